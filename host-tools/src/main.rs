fn main() {
    println!("facegender: not built yet");
}

//! What the CPU is, for benchmarks and timings: figures move between an AVX2 and an AVX-512
//! VNNI machine, so every measurement names the machine it was made on.

/// The CPU's model name (`/proc/cpuinfo` on Linux).
pub fn model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The instruction set the core's kernels dispatch to here.
pub fn core_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        facegender_core::nn::kernels::Level::detect().name()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "portable"
    }
}

/// The SIMD features this CPU offers that the engines use: burn's float kernels and the int8
/// ones (tract picks its kernels from these at run time, AMX tiles included where present).
pub fn features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = Vec::new();
        macro_rules! has {
            ($($f:tt),*) => {$(
                if std::is_x86_feature_detected!($f) {
                    v.push($f);
                }
            )*};
        }
        has!(
            "sse4.1",
            "avx2",
            "fma",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avxvnni"
        );
        if std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains(" amx_int8")) {
            v.push("amx-int8");
        }
        v.join(" ")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        String::new()
    }
}

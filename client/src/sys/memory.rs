//! The allocator's policy for large blocks, set once at start.
//!
//! glibc serves blocks of 128 KiB and more with their own mapping, but when such a block is freed
//! it raises that threshold to the freed size (up to 32 MiB): later buffers of a few MiB then come
//! from the heap, and a heap that has grown is rarely given back. Measured on the bench pair: a
//! delta install held 2.8-3.4 MiB of heap (12.0-12.8 MiB peak RSS, 11.2 MiB with a fixed
//! threshold), and a delta that fell back to the full artifact kept the delta's 5 MiB of dead heap
//! beside the full install's decoder (18.8 MiB, 14.9 MiB fixed). Setting the threshold pins it at
//! glibc's own default, so every large buffer goes back to the kernel when it is dropped. musl
//! already maps large blocks on their own; other C libraries keep their policy.
#![allow(unsafe_code)]

/// glibc's default mmap threshold, kept from growing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Pins the threshold (see the module doc). Returns whether the C library took the setting.
pub fn return_large_blocks_to_the_kernel() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's parameters; called before any thread.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_the_setting_and_others_are_left_alone() {
        let gnu = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(super::return_large_blocks_to_the_kernel(), gnu);
    }
}

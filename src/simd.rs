//! Run-time dispatch to code compiled for AVX2 + FMA.
//!
//! The crate is built for baseline x86-64 (SSE2), so that one binary runs everywhere; its hot
//! loops are written as plain Rust that vectorises, and [`avx2_dispatch!`] compiles such a
//! loop a second time for AVX2 + FMA and picks that copy where the CPU has both (checked
//! at run time; the check is cached by `std`). Both copies compute the same thing in the
//! same order: Rust does not fuse a·b + c into an FMA unless the code calls `mul_add`, so
//! the results are bit-identical, only the vectors are twice as wide.

/// Defines `fn NAME(args) -> R` that runs `BODY(args)` (a function marked
/// `#[inline(always)]`, so that it is compiled into each copy) compiled for AVX2 + FMA where
/// the CPU has them, for the baseline elsewhere:
///
/// ```ignore
/// avx2_dispatch! {
///     /// Doc comment of the dispatcher.
///     pub(crate) fn expand(values: &[f64], out: &mut [f64]) => expand_portable
/// }
/// ```
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use avx2_dispatch;

/// Asks the CPU to bring the cache line holding `ptr` into its caches ahead of a load whose
/// address it cannot know early enough (a stream read at data-dependent offsets); does
/// nothing elsewhere. Any address may be given: a prefetch never faults.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

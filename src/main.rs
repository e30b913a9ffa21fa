//! The autossh binary: the C library's `main`, the allocator and the panic
//! handler; everything else is in the library.
//!
//! No Rust standard library is linked: the program stays small on disk and in
//! memory (a few pages of code of its own beside the C library, no unwinder).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, CStr};

/// The C library's allocator.
struct Malloc;

/// What malloc's results are always aligned to.
const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

// SAFETY: malloc, realloc and posix_memalign return memory that is suitably
// aligned for the layouts they are used with here, or null.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            libc::malloc(layout.size()).cast()
        } else {
            let mut p = core::ptr::null_mut();
            if libc::posix_memalign(&mut p, layout.align(), layout.size()) != 0 {
                return core::ptr::null_mut();
            }
            p.cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        libc::free(ptr.cast());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            return libc::realloc(ptr.cast(), new_size).cast();
        }
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Malloc = Malloc;

/// A bug, never an input: say so on stderr and abort.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    let text = b"autossh: internal error\n";
    // SAFETY: writes a static buffer to stderr, then aborts.
    unsafe {
        libc::write(2, text.as_ptr().cast(), text.len());
        libc::abort()
    }
}

// The precompiled `core` and `alloc` keep references to the unwinder in their
// cleanup paths. With panic=abort nothing ever unwinds, so these are never
// called; they stand in for the unwinder that is not linked (a static glibc
// build links libgcc_eh, which has the real one).
#[cfg(not(all(target_feature = "crt-static", target_env = "gnu")))]
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

// A static glibc's own cleanup tables name gcc's personality routine, which
// lives in libgcc_eh (a dynamic glibc brings its own; musl needs none).
#[cfg_attr(
    all(target_feature = "crt-static", target_env = "gnu"),
    link(name = "gcc_eh", kind = "static")
)]
extern "C" {}

/// One environment variable, as the C library has it.
fn lookup(name: &str) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    // SAFETY: key is NUL-terminated; getenv's result is copied at once.
    unsafe {
        let value = libc::getenv(key.as_ptr().cast());
        (!value.is_null()).then(|| CStr::from_ptr(value).to_bytes().to_vec())
    }
}

/// The program's entry, called by the C runtime.
///
/// # Safety
/// `argv` holds `argc` valid NUL-terminated strings, as the C runtime passes.
#[no_mangle]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args: Vec<Vec<u8>> = (0..argc.max(0) as usize)
        // SAFETY: the C runtime passes argc valid NUL-terminated strings.
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes().to_vec())
        .collect();
    autossh::run(&args, &lookup)
}

//! The signature-header parser allocates nothing: counted with a global allocator.
//! (This file holds a single test so no other thread allocates while it counts.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use webhook_inbox::SignatureFormat;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parsing_signature_headers_allocates_nothing() {
    let headers: [&[u8]; 5] = [
        b"v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v2,abc v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        b"t=1492774577,v1=88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a,v0=00",
        b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        b"plW8VGqq0nDMIEhDqaNNW99asdUCy7EIqLZVcQwtAZ0=",
        b"\xff\x00 ,,== v1, ,v1a,",
    ];
    let formats = [
        SignatureFormat::STANDARD,
        SignatureFormat::KEY_VALUE_LIST,
        SignatureFormat::LABELED,
        SignatureFormat::BARE,
    ];
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut seen = 0usize;
    for header in headers {
        for format in formats {
            for entry in format.entries(header) {
                seen += entry.label.len() + entry.value.len();
            }
        }
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(seen > 0);
    assert_eq!(after - before, 0, "the parser allocated");
}

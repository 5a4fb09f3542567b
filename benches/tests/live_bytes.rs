//! The counting allocator, tested in a binary of its own: its counter is
//! process-global, so tests running in parallel threads would allocate and
//! free into each other's probes.

use aio_benches::live_bytes::LiveBytes;

#[test]
fn a_probe_sees_what_is_still_allocated_and_closes() {
    let probe = LiveBytes::open();
    let kept: Vec<Box<[u8; 64]>> = (0..100).map(|_| Box::new([0u8; 64])).collect();
    // At least the 100 boxes, plus the Vec's buffer of 100 pointers.
    let with_boxes = probe.bytes();
    assert!(with_boxes >= 100 * 64 + 100 * 8, "counted {with_boxes} bytes");
    drop(kept);
    assert!(
        probe.bytes() <= with_boxes - 100 * 64,
        "frees were not counted: {}",
        probe.bytes()
    );
    drop(probe);
    // A closed probe lets the next one open.
    drop(LiveBytes::open());
}

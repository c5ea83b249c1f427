#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = unmask_fuzz::harness::run_engine(data);
});

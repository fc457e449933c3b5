//! Fuzzes the JSON envelope decoder (`wshub_protocol::decode_client_frame`): no text frame
//! may make it panic, and what it accepts names its request type.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = wshub_protocol::decode_client_frame(data) {
        assert!(!frame.request.kind().is_empty());
    }
});

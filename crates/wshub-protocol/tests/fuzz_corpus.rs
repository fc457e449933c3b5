//! Replays the fuzz seed corpus (`fuzz/corpus/*/*`) through both decoders, so the normal
//! test run covers those inputs without cargo-fuzz or a nightly toolchain. Every file goes
//! through both the binary decoder and the JSON envelope decoder, whichever target it seeds;
//! a panic fails the test, and a binary frame that decodes must survive delivery as in the
//! `binary_decode` fuzz target.

use std::path::Path;
use wshub_protocol::binary::{self, Delivery};
use wshub_protocol::decode_client_frame;

const MAX_SIZE: usize = 1 << 20;

fn replay_binary(data: &[u8]) {
    let Ok(frame) = binary::decode(data, MAX_SIZE) else {
        return;
    };
    let delivery = Delivery {
        offset: 42,
        epoch: "6418f65f1",
        id: "evt_c2e6923810",
        timestamp: 1_795_316_896_406,
        sender_id: "server",
    };
    let delivered = binary::extend_metadata(&frame, &delivery).expect("a decoded frame always extends");
    assert_eq!(delivered.len(), frame.delivered_len(&delivery));
    let again = binary::decode(&delivered, usize::MAX).expect("a delivered frame decodes");
    assert_eq!(again.topic(), frame.topic());
    assert_eq!(again.body(), frame.body());
}

#[test]
fn every_seed_decodes_without_panicking() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut seen = 0;
    for target in std::fs::read_dir(&corpus).expect("fuzz/corpus exists") {
        let target = target.expect("readable corpus folder").path();
        for seed in std::fs::read_dir(&target).expect("a corpus folder") {
            let path = seed.expect("readable seed").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            replay_binary(&data);
            let _ = decode_client_frame(&data);
            seen += 1;
        }
    }
    assert!(seen >= 10, "the seed corpus has only {seen} files");
}

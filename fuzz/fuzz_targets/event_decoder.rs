//! The platform event contract on arbitrary bytes, in both directions: decoding never
//! panics, and an accepted message encodes (the sender's bounds check passes too) and
//! decodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_adapter::events::{decode_inbound, decode_outbound};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode_inbound(data) {
        let bytes = event
            .encode()
            .unwrap_or_else(|e| panic!("accepted {event:?} does not encode: {e}"));
        assert_eq!(decode_inbound(&bytes).as_ref(), Ok(&event), "{bytes:?}");
    }
    if let Ok(event) = decode_outbound(data) {
        let bytes = event
            .encode()
            .unwrap_or_else(|e| panic!("accepted {event:?} does not encode: {e}"));
        assert_eq!(decode_outbound(&bytes).as_ref(), Ok(&event), "{bytes:?}");
    }
});

//! HLHV bytes from a peer: the first byte picks where the stream is cut,
//! the rest goes through the capped fsock reader. Whatever it yields, a
//! frame written back parses to the same frame, and the queen's exchange
//! machine takes any sequence of frames without panicking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use proto_hlhv::queen::Exchange;
use proto_hlhv::{Frame, FrameReader, ReqHead};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let reader = FrameReader::new(4096);
    let (first, rest) = data.split_at((cut as usize).min(data.len()));
    let (mut exchange, _) = Exchange::start(ReqHead::default(), 1024);
    let mut buf = BytesMut::from(first);
    for more in [rest, &[][..]] {
        loop {
            match reader.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let again = Frame::parse(frame.to_bytes().slice(4..)).expect("ours parse");
                    assert_eq!(again, frame, "written back, the frame is the same");
                    let _ = exchange.handle_frame(frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        buf.extend_from_slice(more);
    }
});

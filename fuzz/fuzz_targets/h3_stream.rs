//! The HTTP/3 layer (proto-h3ws) never panics on any bytes: the input is
//! split at its first byte's value into a request stream and a control
//! stream, each fed in pieces (copied and as kept chunks, mixed); every head that decodes is checked as a
//! request and a response, and a request re-encodes to the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_h3ws::connect;
use proto_h3ws::control::ControlStream;
use proto_h3ws::fields::{Fields, Request, Response};
use proto_h3ws::request::{Part, RequestStream};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let at = (cut as usize * rest.len()) / 256;
    let (req, control) = rest.split_at(at);
    let mut stream = RequestStream::new(4096);
    for (i, piece) in req.chunks(7).enumerate() {
        // Both ways of feeding it: copied, and kept as a chunk.
        if i % 2 == 0 {
            stream.push(piece);
        } else {
            stream.push_bytes(bytes::Bytes::copy_from_slice(piece));
        }
        loop {
            match stream.next_part() {
                Ok(Some(Part::Head(fields) | Part::Trailers(fields))) => {
                    if let Ok(r) = Request::from_fields(fields.clone()) {
                        let _ = connect::check(&r, |p| p == "/ws");
                        let again = Fields::decode(&r.fields.encode(), 1 << 20).unwrap();
                        assert_eq!(again, r.fields);
                    }
                    let _ = Response::from_fields(fields);
                }
                Ok(Some(Part::Data(d))) => assert!(!d.is_empty()),
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = stream.finish();
    let mut c = ControlStream::new(4096);
    for piece in control.chunks(5) {
        if c.push(piece).is_err() {
            break;
        }
    }
});

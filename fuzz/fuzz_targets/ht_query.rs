//! HT chunks: any bytes either fail to decode or decode to a query that
//! encodes back to exactly the same bytes; answers never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_ht::{Answer, Query};

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = Query::decode(data) {
        let mut again = Vec::new();
        query.encode(&mut again);
        assert_eq!(again, data, "decode then encode is exact");
    }
    if let Ok(answer) = Answer::decode(data) {
        let mut again = Vec::new();
        answer.encode(&mut again);
        assert_eq!(again, data, "decode then encode is exact");
        let _ = answer.fields();
        let _ = answer.packet_id();
    }
    let _ = proto_ht::query::query_id(data);
});

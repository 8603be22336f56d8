//! Hidden hook for the fuzz target `ht_server` in `fuzz/` (and a proptest
//! here): drives the whole server machine from raw bytes and checks its
//! invariants.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{Action, ConnId, DnsFailure, Limits, LookupId, Server, TargetEnd, TargetId};
use crate::cipher::{ChunkCipher, Direction, Key, SessionId};
use crate::query::Answer;

const SESSIONS: [&str; 2] = ["fuzzfuzzfuzzfuzzfuzzfuzz00", "fuzzfuzzfuzzfuzzfuzzfuzz01"];

struct Client {
    up: ChunkCipher,
    down: ChunkCipher,
    conn: Option<ConnId>,
    session: usize,
}

/// Drives the machine: `0xff` separates steps; the first byte of a step
/// picks the input and the rest is its argument. Chunks are encrypted on
/// the client's keystream first (so the fuzzer reaches the queries), or
/// sent raw. Asserts: no answer goes to a connection the driver does not
/// hold, every answer decrypts to a well-formed answer, a connection is
/// ended once, and reads are granted only between reports.
/// The read size of the driven server.
const READ_SIZE: usize = 2;

pub fn drive(data: &[u8]) {
    let key = Key::from_hex(&"5a".repeat(32)).expect("a valid key");
    let limits = Limits {
        max_sessions: 1,
        max_streams: 3,
        max_buffer: 8,
        max_session_buffer: 12,
        read_size: READ_SIZE,
        max_datagrams: 2,
        max_in_flight: 4,
        max_upload_ahead: 2,
        session_idle: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut server = Server::new(key.clone(), limits).expect("valid limits");
    let start = Instant::now();
    let mut now = start;
    let new_client = |session: usize| {
        let id = SessionId::parse(SESSIONS[session]).expect("a valid id");
        Client {
            up: ChunkCipher::new(&key, &id, Direction::ClientToServer),
            down: ChunkCipher::new(&key, &id, Direction::ServerToClient),
            conn: None,
            session,
        }
    };
    let mut clients: Vec<Client> = (0..4).map(|i| new_client(i % 2)).collect();
    let mut ended: HashSet<ConnId> = HashSet::new();
    let mut targets: HashSet<TargetId> = HashSet::new();
    let mut reading: HashSet<TargetId> = HashSet::new();
    let mut lookups: Vec<LookupId> = Vec::new();
    for step in data.split(|&b| b == 0xff) {
        let Some((&op, arg)) = step.split_first() else {
            continue;
        };
        let c = usize::from(op >> 6);
        let pick = |n: usize| usize::from(arg.first().copied().unwrap_or(0)) % n.max(1);
        let target = || {
            let mut all: Vec<TargetId> = targets.iter().copied().collect();
            all.sort();
            all.get(pick(all.len())).copied()
        };
        match op & 0x0f {
            0..=5 => {
                let client = &mut clients[c];
                let mut chunk = arg.to_vec();
                if op & 0x10 == 0 {
                    client.up.apply(&mut chunk);
                }
                match client.conn {
                    Some(conn) => server.handle_chunk(conn, &mut chunk),
                    None => {
                        let sid = SESSIONS[client.session];
                        if let Ok(conn) = server.handle_first_chunk(now, Some(sid), &mut chunk) {
                            client.conn = Some(conn);
                        } else {
                            // A refused first chunk used up nothing: the
                            // next attempt starts a fresh keystream.
                            clients[c] = new_client(clients[c].session);
                        }
                    }
                }
            }
            6 => {
                if let Some(conn) = clients[c].conn.take() {
                    server.handle_connection_closed(now, conn);
                    clients[c] = new_client(clients[c].session);
                }
            }
            7 => {
                if let Some(t) = target() {
                    server.handle_connected(t);
                }
            }
            8 => {
                if let Some(t) = target() {
                    server.handle_connect_failed(t);
                }
            }
            9 => {
                if let Some(t) = target() {
                    reading.remove(&t);
                    // The driver never reads more than `read_size` at once.
                    let data = arg.get(1..).unwrap_or_default();
                    let data = &data[..data.len().min(READ_SIZE)];
                    server.handle_read(t, data.to_vec());
                }
            }
            10 => {
                if let Some(t) = target() {
                    reading.remove(&t);
                    let end = if op & 0x10 == 0 {
                        TargetEnd::Eof
                    } else {
                        TargetEnd::Error
                    };
                    server.handle_target_end(t, end);
                }
            }
            11 => {
                if let Some(t) = target() {
                    server.handle_written(t, usize::from(arg.get(1).copied().unwrap_or(0)));
                }
            }
            12 => {
                if !lookups.is_empty() {
                    let l = lookups.remove(pick(lookups.len()));
                    let result = if op & 0x10 == 0 {
                        Ok(vec!["192.0.2.1".to_owned(), "bad record".to_owned()])
                    } else {
                        Err(DnsFailure::Failed)
                    };
                    server.handle_dns(l, result);
                }
            }
            13 => {
                now += Duration::from_secs(u64::from(arg.first().copied().unwrap_or(1)));
                server.handle_timeout(now);
            }
            14 => server.handle_oversized_chunk(clients[c].conn.unwrap_or(ConnId(0))),
            _ => server.shutdown(),
        }
        server.check_session_buffers();
        // What the machine ends, the driver closes (and says so), as the
        // real driver does; that may produce more actions.
        loop {
            let mut to_close = Vec::new();
            while let Some(action) = server.poll_action() {
                check(
                    action,
                    &mut clients,
                    &mut ended,
                    &mut targets,
                    &mut reading,
                    &mut lookups,
                    &mut to_close,
                );
            }
            if to_close.is_empty() {
                break;
            }
            for conn in to_close {
                server.handle_connection_closed(now, conn);
                if let Some(i) = clients.iter().position(|cl| cl.conn == Some(conn)) {
                    clients[i] = new_client(clients[i].session);
                }
            }
        }
    }
}

fn check(
    action: Action,
    clients: &mut [Client],
    ended: &mut HashSet<ConnId>,
    targets: &mut HashSet<TargetId>,
    reading: &mut HashSet<TargetId>,
    lookups: &mut Vec<LookupId>,
    to_close: &mut Vec<ConnId>,
) {
    match action {
        Action::Send { conn, mut chunk } => {
            assert!(!ended.contains(&conn), "an answer after the end");
            let client = clients
                .iter_mut()
                .find(|cl| cl.conn == Some(conn))
                .expect("answers go to open connections");
            client.down.apply(&mut chunk);
            assert!(Answer::decode(&chunk).is_ok(), "{chunk:?}");
        }
        Action::EndConnection { conn, .. } => {
            assert!(ended.insert(conn), "a connection ended twice");
            to_close.push(conn);
        }
        Action::Dial { target, .. } => {
            assert!(targets.insert(target), "a target dialed twice");
        }
        Action::Read { target } => {
            assert!(targets.contains(&target));
            assert!(reading.insert(target), "a second read before a report");
        }
        Action::Write { target, .. } | Action::ShutdownWrite { target } => {
            assert!(targets.contains(&target));
        }
        Action::CloseTarget { target } => {
            targets.remove(&target);
            reading.remove(&target);
        }
        Action::Resolve { lookup, .. } => lookups.push(lookup),
        Action::Event(_) => {}
    }
}

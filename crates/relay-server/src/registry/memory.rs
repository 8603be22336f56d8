//! The registry in one process's memory: the default, for a single relay.
//!
//! One mutex guards all of it, held only for map updates (no I/O, no
//! `.await`). Expiry is lazy: every operation first forgets the tunnels
//! whose resume window has ended, taken in order from a queue keyed by
//! that moment, so the cost is proportional to what expired.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use super::{
    Forward, ReconnectToken, RegistryConfig, RegistryError, RegistryFuture, TokenHash,
    TunnelRecord, TunnelRegistry, check_public_key, from_ms, is_tunnel_id, new_tunnel_id, to_ms,
};

/// Where the in-memory registry reads the time (tests drive their own).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// Wall-clock time that only moves forward: the wall time at start plus
/// the monotonic time since, so a clock step cannot expire leases early.
#[derive(Debug)]
pub struct SystemClock {
    wall: SystemTime,
    mono: Instant,
}

impl SystemClock {
    /// Starts now.
    pub fn new() -> SystemClock {
        SystemClock {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        self.wall + self.mono.elapsed()
    }
}

/// The in-memory [`TunnelRegistry`].
pub struct MemoryRegistry {
    config: RegistryConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRegistry")
            .field("config", &self.config)
            .field("tunnels", &self.lock().tunnels.len())
            .finish()
    }
}

struct Entry {
    record: TunnelRecord,
    token: TokenHash,
    /// The token presented at the last resume (see the module doc of
    /// `registry`).
    previous: Option<TokenHash>,
    address_index: u32,
    lease_until: u64,
    forget_at: u64,
}

#[derive(Default)]
struct State {
    tunnels: HashMap<String, Entry>,
    /// (owner, name) → tunnel id.
    names: HashMap<(String, String), String>,
    /// Client address index → tunnel id.
    addresses: HashMap<u32, String>,
    /// Public port → tunnel id.
    ports: HashMap<u16, String>,
    /// (forget_at, tunnel id), earliest first.
    forget_queue: BTreeSet<(u64, String)>,
    /// The last address index and port index handed out.
    address_cursor: Option<u32>,
    port_cursor: Option<u32>,
}

impl MemoryRegistry {
    /// A registry on the system clock.
    pub fn new(config: RegistryConfig) -> Result<MemoryRegistry, super::ConfigError> {
        MemoryRegistry::with_clock(config, Arc::new(SystemClock::new()))
    }

    /// A registry on `clock`.
    pub fn with_clock(
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<MemoryRegistry, super::ConfigError> {
        config.validate()?;
        Ok(MemoryRegistry {
            config,
            clock,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves maps that are still consistent
        // (every update is a few inserts); carry on with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state with everything due at `now` forgotten.
    fn swept(&self, now: u64) -> (MutexGuard<'_, State>, usize) {
        let mut state = self.lock();
        let forgotten = state.sweep(now);
        (state, forgotten)
    }

    fn create_now(
        &self,
        owner: &str,
        name: &str,
        ports: &[u16],
        key: &str,
    ) -> Result<(TunnelRecord, ReconnectToken), RegistryError> {
        self.config.check_create(name, ports, key)?;
        let (token, hash) = ReconnectToken::generate()?;
        let now = to_ms(self.clock.now());
        let (mut state, _) = self.swept(now);
        let name_key = (owner.to_owned(), name.to_owned());

        // A same-name tunnel: refused while live, replaced once its lease
        // has run out.
        let old = state.names.get(&name_key).cloned();
        if let Some(entry) = old.as_ref().and_then(|id| state.tunnels.get(id))
            && entry.lease_until > now
        {
            return Err(RegistryError::Exists {
                name: name.to_owned(),
            });
        }
        let free_for_us = |holder: Option<&String>| holder.is_none_or(|h| Some(h) == old.as_ref());

        let network = self.config.network;
        let address_index = scan(network.client_capacity(), state.address_cursor, |i| {
            free_for_us(state.addresses.get(&i))
        })
        .ok_or(RegistryError::AddressesExhausted)?;

        let range = self.config.public_ports;
        let mut cursor = state.port_cursor;
        let mut public = Vec::with_capacity(ports.len());
        for _ in ports {
            let index = scan(range.len(), cursor, |i| {
                let port = range.nth(i);
                !public.contains(&port) && free_for_us(state.ports.get(&port))
            })
            .ok_or(RegistryError::PortsExhausted)?;
            public.push(range.nth(index));
            cursor = Some(index);
        }

        // Everything is available: from here on nothing fails.
        if let Some(old) = &old {
            state.remove(old);
            tracing::debug!(tunnel_id = %old, "replaced a tunnel whose lease had run out");
        }
        let id = new_tunnel_id();
        let lease_until = now + self.config.lease_ms();
        let forget_at = lease_until + self.config.window_ms();
        let record = TunnelRecord {
            tunnel_id: id.clone(),
            owner: owner.to_owned(),
            name: name.to_owned(),
            ports: ports.to_vec(),
            client_public_key: key.to_owned(),
            address: network.client_address(address_index),
            forwards: ports
                .iter()
                .zip(&public)
                .map(|(&port, &public_port)| Forward { port, public_port })
                .collect(),
            created_at: from_ms(now),
            lease_expires_at: from_ms(lease_until),
        };
        state.address_cursor = Some(address_index);
        state.port_cursor = cursor;
        state.addresses.insert(address_index, id.clone());
        for &port in &public {
            state.ports.insert(port, id.clone());
        }
        state.names.insert(name_key, id.clone());
        state.forget_queue.insert((forget_at, id.clone()));
        state.tunnels.insert(
            id,
            Entry {
                record: record.clone(),
                token: hash,
                previous: None,
                address_index,
                lease_until,
                forget_at,
            },
        );
        Ok((record, token))
    }

    fn resume_now(
        &self,
        owner: &str,
        tunnel_id: &str,
        token: &ReconnectToken,
        key: Option<&str>,
    ) -> Result<(TunnelRecord, ReconnectToken), RegistryError> {
        if let Some(key) = key {
            check_public_key(key)?;
        }
        let (new_token, new_hash) = ReconnectToken::generate()?;
        let now = to_ms(self.clock.now());
        let (mut state, _) = self.swept(now);
        let presented = token.hash();
        let entry = state
            .tunnels
            .get_mut(tunnel_id)
            .ok_or(RegistryError::ResumeRejected)?;
        let current = entry.token.matches(&presented);
        let previous = entry
            .previous
            .as_ref()
            .map_or(subtle::Choice::from(0), |p| p.matches(&presented));
        if entry.record.owner != owner || !bool::from(current | previous) {
            return Err(RegistryError::ResumeRejected);
        }
        entry.previous = Some(presented);
        entry.token = new_hash;
        if let Some(key) = key {
            entry.record.client_public_key = key.to_owned();
        }
        let record = state.extend(tunnel_id, now, &self.config);
        Ok((record, new_token))
    }
}

/// Walks `count` indices round-robin from the one after `cursor`; returns
/// the first for which `free` holds.
fn scan(count: u32, cursor: Option<u32>, mut free: impl FnMut(u32) -> bool) -> Option<u32> {
    let start = cursor.map_or(0, |c| (c + 1) % count);
    (0..count).map(|i| (start + i) % count).find(|&i| free(i))
}

impl State {
    /// Forgets every tunnel whose resume window ended by `now`.
    fn sweep(&mut self, now: u64) -> usize {
        let mut forgotten = 0;
        while let Some((at, id)) = self.forget_queue.first().cloned() {
            if at > now {
                break;
            }
            self.remove(&id);
            forgotten += 1;
        }
        forgotten
    }

    /// Forgets `id` and frees what it held.
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.tunnels.remove(id)?;
        self.forget_queue.remove(&(entry.forget_at, id.to_owned()));
        let name_key = (entry.record.owner.clone(), entry.record.name.clone());
        if self.names.get(&name_key).is_some_and(|n| n == id) {
            self.names.remove(&name_key);
        }
        if self
            .addresses
            .get(&entry.address_index)
            .is_some_and(|h| h == id)
        {
            self.addresses.remove(&entry.address_index);
        }
        for forward in &entry.record.forwards {
            if self
                .ports
                .get(&forward.public_port)
                .is_some_and(|h| h == id)
            {
                self.ports.remove(&forward.public_port);
            }
        }
        Some(entry)
    }

    /// Restarts `id`'s lease at `now` (the tunnel exists).
    fn extend(&mut self, id: &str, now: u64, config: &RegistryConfig) -> TunnelRecord {
        let lease_until = now + config.lease_ms();
        let forget_at = lease_until + config.window_ms();
        let entry = self.tunnels.get_mut(id).expect("caller checked");
        let old = (entry.forget_at, id.to_owned());
        entry.lease_until = lease_until;
        entry.forget_at = forget_at;
        entry.record.lease_expires_at = from_ms(lease_until);
        let record = entry.record.clone();
        self.forget_queue.remove(&old);
        self.forget_queue.insert((forget_at, id.to_owned()));
        record
    }
}

impl TunnelRegistry for MemoryRegistry {
    fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn create<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        ports: &'a [u16],
        client_public_key: &'a str,
    ) -> RegistryFuture<'a, (TunnelRecord, ReconnectToken)> {
        Box::pin(std::future::ready(self.create_now(
            owner,
            name,
            ports,
            client_public_key,
        )))
    }

    fn resume<'a>(
        &'a self,
        owner: &'a str,
        tunnel_id: &'a str,
        token: &'a ReconnectToken,
        client_public_key: Option<&'a str>,
    ) -> RegistryFuture<'a, (TunnelRecord, ReconnectToken)> {
        Box::pin(std::future::ready(self.resume_now(
            owner,
            tunnel_id,
            token,
            client_public_key,
        )))
    }

    fn renew<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, SystemTime> {
        let now = to_ms(self.clock.now());
        let (mut state, _) = self.swept(now);
        let result = if is_tunnel_id(tunnel_id) && state.tunnels.contains_key(tunnel_id) {
            Ok(state.extend(tunnel_id, now, &self.config).lease_expires_at)
        } else {
            Err(RegistryError::UnknownTunnel)
        };
        Box::pin(std::future::ready(result))
    }

    fn release<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, bool> {
        let now = to_ms(self.clock.now());
        let (mut state, _) = self.swept(now);
        let existed = state.remove(tunnel_id).is_some();
        Box::pin(std::future::ready(Ok(existed)))
    }

    fn get<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, Option<TunnelRecord>> {
        let now = to_ms(self.clock.now());
        let (state, _) = self.swept(now);
        let record = state.tunnels.get(tunnel_id).map(|e| e.record.clone());
        Box::pin(std::future::ready(Ok(record)))
    }

    fn count_live(&self) -> RegistryFuture<'_, usize> {
        let now = to_ms(self.clock.now());
        let (state, _) = self.swept(now);
        let live = state
            .tunnels
            .values()
            .filter(|e| e.lease_until > now)
            .count();
        Box::pin(std::future::ready(Ok(live)))
    }

    fn sweep(&self) -> RegistryFuture<'_, usize> {
        let now = to_ms(self.clock.now());
        let forgotten = self.lock().sweep(now);
        Box::pin(std::future::ready(Ok(forgotten)))
    }
}

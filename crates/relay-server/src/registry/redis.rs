//! The registry in Redis, shared by several relays behind a load balancer.
//!
//! Every decision that must not race (is the name free? which address and
//! ports are free?) runs in one Lua script, which Redis executes atomically:
//! two relays can never hand out the same address or public port. All
//! times come from the Redis server's clock (`TIME`), so relays whose clocks
//! disagree still agree on leases.
//!
//! # Key layout (`P` is [`RedisOptions::prefix`], default `relay:`)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P tunnel:<id>` | hash | `owner`, `name`, `namekey`, `ports` (csv), `key`, `addr`, `pubs` (csv public ports, same order), `created`, `lease` (ms since the epoch), `tok`, `prev` (hex SHA-256 of the current and previous reconnect token) |
//! | `P name:<hex sha256(len(owner) ‖ owner ‖ name)>` | string | tunnel id |
//! | `P addr:<a.b.c.d>` | string | tunnel id (the address claim) |
//! | `P port:<n>` | string | tunnel id (the public port claim) |
//! | `P live` | sorted set | tunnel id scored by lease end (ms) |
//! | `P cursor:addr`, `P cursor:port` | string | last index handed out |
//!
//! A tunnel's keys all expire together (`PEXPIREAT`) when its resume window
//! ends; each renewal or resume moves that moment. So a forgotten tunnel
//! frees its claims with no sweeper, and an explicit release deletes them.
//! The `live` index is trimmed by [`sweep`](TunnelRegistry::sweep).
//!
//! Requirements: one Redis (or a primary with replicas); scripts touch keys
//! they compute, which Redis Cluster does not allow. `maxmemory-policy` must
//! be `noeviction`: an evicted claim would let an address be handed out
//! twice.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisError, Script};
use sha2::{Digest, Sha256};

use super::{
    Forward, ReconnectToken, RegistryConfig, RegistryError, RegistryFuture, TokenHash,
    TunnelRecord, TunnelRegistry, check_public_key, from_ms, is_tunnel_id, new_tunnel_id,
};

/// How to reach Redis and where to keep our keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prepended to every key, so relays of different deployments (or
    /// tests) can share a Redis.
    pub prefix: String,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on each command's answer.
    pub response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "relay:".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
        }
    }
}

/// The Redis [`TunnelRegistry`].
pub struct RedisRegistry {
    config: RegistryConfig,
    options: RedisOptions,
    client: Client,
    /// The shared multiplexed connection; dropped after an I/O error so
    /// the next call reconnects.
    conn: Mutex<Option<MultiplexedConnection>>,
    scripts: Scripts,
}

/// Shows the prefix, never the URL (it may hold a password).
impl fmt::Debug for RedisRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRegistry")
            .field("config", &self.config)
            .field("prefix", &self.options.prefix)
            .finish()
    }
}

struct Scripts {
    create: Script,
    resume: Script,
    renew: Script,
    release: Script,
    count_live: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let script = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            create: script(CREATE),
            resume: script(RESUME),
            renew: script(RENEW),
            release: script(RELEASE),
            count_live: script(COUNT_LIVE),
            sweep: script(SWEEP),
        }
    }
}

impl RedisRegistry {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`) with the
    /// default options, and checks the connection with a `PING`.
    pub async fn connect(
        url: &str,
        config: RegistryConfig,
    ) -> Result<RedisRegistry, RegistryError> {
        RedisRegistry::connect_with(url, config, RedisOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(
        url: &str,
        config: RegistryConfig,
        options: RedisOptions,
    ) -> Result<RedisRegistry, RegistryError> {
        config.validate()?;
        let client = Client::open(url)?;
        let registry = RedisRegistry {
            config,
            options,
            client,
            conn: Mutex::new(None),
            scripts: Scripts::new(),
        };
        let mut conn = registry.connection().await?;
        let _pong: String = registry.checked(::redis::cmd("PING").query_async(&mut conn).await)?;
        Ok(registry)
    }

    /// The cached connection, or a new one.
    async fn connection(&self) -> Result<MultiplexedConnection, RegistryError> {
        if let Some(conn) = self.slot().as_ref() {
            return Ok(conn.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_response_timeout(Some(self.options.response_timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *self.slot() = Some(conn.clone());
        Ok(conn)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Passes `result` on; after a connection-level error, drops the cached
    /// connection so the next call opens a new one.
    fn checked<T>(&self, result: Result<T, RedisError>) -> Result<T, RegistryError> {
        result.map_err(|e| {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.is_timeout()
            {
                *self.slot() = None;
            }
            RegistryError::Backend(e)
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.options.prefix)
    }

    async fn create_inner(
        &self,
        owner: &str,
        name: &str,
        ports: &[u16],
        key: &str,
    ) -> Result<(TunnelRecord, ReconnectToken), RegistryError> {
        self.config.check_create(name, ports, key)?;
        let (token, hash) = ReconnectToken::generate()?;
        let id = new_tunnel_id();
        let network = self.config.network;
        let range = self.config.public_ports;
        let mut conn = self.connection().await?;
        let reply: Vec<String> = self.checked(
            self.scripts
                .create
                .arg(&self.options.prefix)
                .arg(owner)
                .arg(name)
                .arg(name_key(owner, name))
                .arg(&id)
                .arg(hash.to_hex())
                .arg(csv(ports.iter()))
                .arg(key)
                .arg(self.config.lease_ms())
                .arg(self.config.window_ms())
                .arg(network.first_client())
                .arg(network.client_capacity())
                .arg(range.first())
                .arg(range.len())
                .arg(ports.len())
                .invoke_async(&mut conn)
                .await,
        )?;
        match reply.first().map(String::as_str) {
            Some("ok") => {}
            Some("exists") => {
                return Err(RegistryError::Exists {
                    name: name.to_owned(),
                });
            }
            Some("addresses_exhausted") => return Err(RegistryError::AddressesExhausted),
            Some("ports_exhausted") => return Err(RegistryError::PortsExhausted),
            _ => return Err(corrupt(&id, "create reply")),
        }
        let [_, created, lease, addr, pubs] = reply.as_slice() else {
            return Err(corrupt(&id, "create reply"));
        };
        let record = TunnelRecord {
            tunnel_id: id.clone(),
            owner: owner.to_owned(),
            name: name.to_owned(),
            ports: ports.to_vec(),
            client_public_key: key.to_owned(),
            address: addr.parse().map_err(|_| corrupt(&id, "addr"))?,
            forwards: forwards(&id, ports, pubs)?,
            created_at: from_ms(parse_ms(&id, "created", created)?),
            lease_expires_at: from_ms(parse_ms(&id, "lease", lease)?),
        };
        Ok((record, token))
    }

    async fn resume_inner(
        &self,
        owner: &str,
        tunnel_id: &str,
        token: &ReconnectToken,
        key: Option<&str>,
    ) -> Result<(TunnelRecord, ReconnectToken), RegistryError> {
        if let Some(key) = key {
            check_public_key(key)?;
        }
        if !is_tunnel_id(tunnel_id) {
            return Err(RegistryError::ResumeRejected);
        }
        let mut conn = self.connection().await?;
        // Lua compares strings in variable time, so the token is checked
        // here, in constant time; the script then re-checks that the hash
        // we matched is still current (a concurrent resume may have
        // rotated it), which reveals nothing the caller did not prove.
        let (stored_owner, current, previous): (Option<String>, Option<String>, Option<String>) =
            self.checked(
                ::redis::cmd("HMGET")
                    .arg(self.key("tunnel", tunnel_id))
                    .arg("owner")
                    .arg("tok")
                    .arg("prev")
                    .query_async(&mut conn)
                    .await,
            )?;
        let presented = token.hash();
        let matches = |stored: Option<String>| {
            stored
                .as_deref()
                .and_then(TokenHash::from_hex)
                .map_or(subtle::Choice::from(0), |h| h.matches(&presented))
        };
        let token_ok = matches(current) | matches(previous);
        if stored_owner.as_deref() != Some(owner) || !bool::from(token_ok) {
            return Err(RegistryError::ResumeRejected);
        }
        let (new_token, new_hash) = ReconnectToken::generate()?;
        let reply: Vec<String> = self.checked(
            self.scripts
                .resume
                .arg(&self.options.prefix)
                .arg(tunnel_id)
                .arg(presented.to_hex())
                .arg(new_hash.to_hex())
                .arg(key.unwrap_or(""))
                .arg(self.config.lease_ms())
                .arg(self.config.window_ms())
                .invoke_async(&mut conn)
                .await,
        )?;
        match reply.split_first() {
            Some((status, fields)) if status == "ok" => {
                Ok((record_from_fields(tunnel_id, pairs(fields))?, new_token))
            }
            Some((status, _)) if status == "rejected" => Err(RegistryError::ResumeRejected),
            _ => Err(corrupt(tunnel_id, "resume reply")),
        }
    }

    async fn renew_inner(&self, tunnel_id: &str) -> Result<SystemTime, RegistryError> {
        if !is_tunnel_id(tunnel_id) {
            return Err(RegistryError::UnknownTunnel);
        }
        let mut conn = self.connection().await?;
        let reply: Vec<String> = self.checked(
            self.scripts
                .renew
                .arg(&self.options.prefix)
                .arg(tunnel_id)
                .arg(self.config.lease_ms())
                .arg(self.config.window_ms())
                .invoke_async(&mut conn)
                .await,
        )?;
        match reply.as_slice() {
            [status, lease] if status == "ok" => Ok(from_ms(parse_ms(tunnel_id, "lease", lease)?)),
            [status] if status == "unknown" => Err(RegistryError::UnknownTunnel),
            _ => Err(corrupt(tunnel_id, "renew reply")),
        }
    }

    async fn release_inner(&self, tunnel_id: &str) -> Result<bool, RegistryError> {
        if !is_tunnel_id(tunnel_id) {
            return Ok(false);
        }
        let mut conn = self.connection().await?;
        let existed: i64 = self.checked(
            self.scripts
                .release
                .arg(&self.options.prefix)
                .arg(tunnel_id)
                .invoke_async(&mut conn)
                .await,
        )?;
        Ok(existed == 1)
    }

    async fn get_inner(&self, tunnel_id: &str) -> Result<Option<TunnelRecord>, RegistryError> {
        if !is_tunnel_id(tunnel_id) {
            return Ok(None);
        }
        let mut conn = self.connection().await?;
        let fields: HashMap<String, String> = self.checked(
            ::redis::cmd("HGETALL")
                .arg(self.key("tunnel", tunnel_id))
                .query_async(&mut conn)
                .await,
        )?;
        if fields.is_empty() {
            return Ok(None);
        }
        record_from_fields(tunnel_id, fields).map(Some)
    }

    async fn count_live_inner(&self) -> Result<usize, RegistryError> {
        let mut conn = self.connection().await?;
        let live: u64 = self.checked(
            self.scripts
                .count_live
                .arg(&self.options.prefix)
                .invoke_async(&mut conn)
                .await,
        )?;
        Ok(live as usize)
    }

    async fn sweep_inner(&self) -> Result<usize, RegistryError> {
        let mut conn = self.connection().await?;
        let removed: u64 = self.checked(
            self.scripts
                .sweep
                .arg(&self.options.prefix)
                .arg(self.config.window_ms())
                .invoke_async(&mut conn)
                .await,
        )?;
        Ok(removed as usize)
    }
}

impl TunnelRegistry for RedisRegistry {
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
        Box::pin(self.create_inner(owner, name, ports, client_public_key))
    }

    fn resume<'a>(
        &'a self,
        owner: &'a str,
        tunnel_id: &'a str,
        token: &'a ReconnectToken,
        client_public_key: Option<&'a str>,
    ) -> RegistryFuture<'a, (TunnelRecord, ReconnectToken)> {
        Box::pin(self.resume_inner(owner, tunnel_id, token, client_public_key))
    }

    fn renew<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, SystemTime> {
        Box::pin(self.renew_inner(tunnel_id))
    }

    fn release<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, bool> {
        Box::pin(self.release_inner(tunnel_id))
    }

    fn get<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, Option<TunnelRecord>> {
        Box::pin(self.get_inner(tunnel_id))
    }

    fn count_live(&self) -> RegistryFuture<'_, usize> {
        Box::pin(self.count_live_inner())
    }

    fn sweep(&self) -> RegistryFuture<'_, usize> {
        Box::pin(self.sweep_inner())
    }
}

/// The name claim's key part: a hash, so any owner and name make a short,
/// unambiguous key (the length prefix keeps `("a:b", "c")` and
/// `("a", "b:c")` apart).
fn name_key(owner: &str, name: &str) -> String {
    let mut h = Sha256::new();
    h.update((owner.len() as u64).to_be_bytes());
    h.update(owner.as_bytes());
    h.update(name.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn csv<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

fn corrupt(tunnel_id: &str, field: &'static str) -> RegistryError {
    RegistryError::Corrupt {
        tunnel_id: tunnel_id.to_owned(),
        field,
    }
}

fn parse_ms(tunnel_id: &str, field: &'static str, text: &str) -> Result<u64, RegistryError> {
    text.parse().map_err(|_| corrupt(tunnel_id, field))
}

fn parse_ports(
    tunnel_id: &str,
    field: &'static str,
    text: &str,
) -> Result<Vec<u16>, RegistryError> {
    text.split(',')
        .map(|p| p.parse().map_err(|_| corrupt(tunnel_id, field)))
        .collect()
}

fn forwards(tunnel_id: &str, ports: &[u16], pubs: &str) -> Result<Vec<Forward>, RegistryError> {
    let public = parse_ports(tunnel_id, "pubs", pubs)?;
    if public.len() != ports.len() {
        return Err(corrupt(tunnel_id, "pubs"));
    }
    Ok(ports
        .iter()
        .zip(public)
        .map(|(&port, public_port)| Forward { port, public_port })
        .collect())
}

/// A flat `[field, value, …]` list as a map.
fn pairs(flat: &[String]) -> HashMap<String, String> {
    flat.chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect()
}

fn record_from_fields(
    tunnel_id: &str,
    mut fields: HashMap<String, String>,
) -> Result<TunnelRecord, RegistryError> {
    let mut take = |field: &'static str| {
        fields
            .remove(field)
            .ok_or_else(|| corrupt(tunnel_id, field))
    };
    let owner = take("owner")?;
    let name = take("name")?;
    let ports = parse_ports(tunnel_id, "ports", &take("ports")?)?;
    let client_public_key = take("key")?;
    let address: Ipv4Addr = take("addr")?
        .parse()
        .map_err(|_| corrupt(tunnel_id, "addr"))?;
    let pubs = take("pubs")?;
    let created = parse_ms(tunnel_id, "created", &take("created")?)?;
    let lease = parse_ms(tunnel_id, "lease", &take("lease")?)?;
    Ok(TunnelRecord {
        tunnel_id: tunnel_id.to_owned(),
        owner,
        name,
        forwards: forwards(tunnel_id, &ports, &pubs)?,
        ports,
        client_public_key,
        address,
        created_at: from_ms(created),
        lease_expires_at: from_ms(lease),
    })
}

/// Helpers every script starts with. `ARGV[1]` is always the key prefix.
const PRELUDE: &str = r#"
local p = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function n2s(n) return string.format('%d', n) end
local function ip(n)
  return string.format('%d.%d.%d.%d', math.floor(n / 16777216) % 256,
    math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end
-- The claim keys of a tunnel (name, address, public ports).
local function claims(h)
  local keys = {p .. 'name:' .. h.namekey, p .. 'addr:' .. h.addr}
  for port in string.gmatch(h.pubs, '[^,]+') do
    table.insert(keys, p .. 'port:' .. port)
  end
  return keys
end
local function load(id)
  local f = redis.call('HMGET', p .. 'tunnel:' .. id,
    'namekey', 'addr', 'pubs', 'lease', 'tok', 'prev')
  if not f[1] or not f[2] or not f[3] or not f[4] then return nil end
  return {namekey = f[1], addr = f[2], pubs = f[3], lease = tonumber(f[4]),
    tok = f[5], prev = f[6]}
end
-- Deletes a tunnel and the claims that are still its own.
local function forget(id, h)
  redis.call('DEL', p .. 'tunnel:' .. id)
  for _, k in ipairs(claims(h)) do
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
  redis.call('ZREM', p .. 'live', id)
end
-- Sets the lease; every key of the tunnel expires when the window ends.
local function touch(id, h, lease_until, forget_at)
  local key = p .. 'tunnel:' .. id
  redis.call('HSET', key, 'lease', n2s(lease_until))
  redis.call('PEXPIREAT', key, n2s(forget_at))
  for _, k in ipairs(claims(h)) do redis.call('PEXPIREAT', k, n2s(forget_at)) end
  redis.call('ZADD', p .. 'live', n2s(lease_until), id)
end
"#;

/// ARGV: prefix, owner, name, namekey, id, token hash, ports csv, public
/// key, lease ms, window ms, first client address (u32), address count,
/// first public port, port count, ports wanted.
const CREATE: &str = r#"
local now = now_ms()
local lease_until = now + tonumber(ARGV[9])
local forget_at = lease_until + tonumber(ARGV[10])
local id = ARGV[5]
local namekey = p .. 'name:' .. ARGV[4]
local old = redis.call('GET', namekey)
local oldh = nil
if old then
  oldh = load(old)
  if oldh and oldh.lease > now then return {'exists'} end
end
-- A claim is free if unset or held by the expired tunnel we replace.
local function free(key)
  local v = redis.call('GET', key)
  return (not v) or v == old
end
local acount = tonumber(ARGV[12])
local acur = redis.call('GET', p .. 'cursor:addr')
local astart = 0
if acur then astart = (tonumber(acur) + 1) % acount end
local aidx, addr = nil, nil
for i = 0, acount - 1 do
  local idx = (astart + i) % acount
  local a = ip(tonumber(ARGV[11]) + idx)
  if free(p .. 'addr:' .. a) then aidx = idx; addr = a; break end
end
if not addr then return {'addresses_exhausted'} end
local pfirst, pcount = tonumber(ARGV[13]), tonumber(ARGV[14])
local pcur = redis.call('GET', p .. 'cursor:port')
local pstart = 0
if pcur then pstart = (tonumber(pcur) + 1) % pcount end
local chosen, taken, pidx = {}, {}, nil
for k = 1, tonumber(ARGV[15]) do
  local found = nil
  for i = 0, pcount - 1 do
    local idx = (pstart + i) % pcount
    local port = n2s(pfirst + idx)
    if not taken[port] and free(p .. 'port:' .. port) then found = idx; break end
  end
  if not found then return {'ports_exhausted'} end
  local port = n2s(pfirst + found)
  taken[port] = true
  table.insert(chosen, port)
  pidx = found
  pstart = (found + 1) % pcount
end
-- Everything is available: from here on nothing fails.
if old and oldh then forget(old, oldh) end
local pubs = table.concat(chosen, ',')
redis.call('HSET', p .. 'tunnel:' .. id, 'owner', ARGV[2], 'name', ARGV[3],
  'namekey', ARGV[4], 'ports', ARGV[7], 'key', ARGV[8], 'addr', addr,
  'pubs', pubs, 'created', n2s(now), 'tok', ARGV[6], 'prev', '')
redis.call('SET', namekey, id)
redis.call('SET', p .. 'addr:' .. addr, id)
for _, port in ipairs(chosen) do redis.call('SET', p .. 'port:' .. port, id) end
touch(id, {namekey = ARGV[4], addr = addr, pubs = pubs}, lease_until, forget_at)
redis.call('SET', p .. 'cursor:addr', n2s(aidx))
redis.call('SET', p .. 'cursor:port', n2s(pidx))
return {'ok', n2s(now), n2s(lease_until), addr, pubs}
"#;

/// ARGV: prefix, id, presented token hash, new token hash, new public key
/// or "", lease ms, window ms.
const RESUME: &str = r#"
local id = ARGV[2]
local h = load(id)
if not h then return {'rejected'} end
if h.tok ~= ARGV[3] and h.prev ~= ARGV[3] then return {'rejected'} end
local key = p .. 'tunnel:' .. id
redis.call('HSET', key, 'tok', ARGV[4], 'prev', ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', key, 'key', ARGV[5]) end
local lease_until = now_ms() + tonumber(ARGV[6])
touch(id, h, lease_until, lease_until + tonumber(ARGV[7]))
local reply = {'ok'}
for _, v in ipairs(redis.call('HGETALL', key)) do table.insert(reply, v) end
return reply
"#;

/// ARGV: prefix, id, lease ms, window ms.
const RENEW: &str = r#"
local h = load(ARGV[2])
if not h then return {'unknown'} end
local lease_until = now_ms() + tonumber(ARGV[3])
touch(ARGV[2], h, lease_until, lease_until + tonumber(ARGV[4]))
return {'ok', n2s(lease_until)}
"#;

/// ARGV: prefix, id. Returns 1 if the tunnel existed.
const RELEASE: &str = r#"
redis.call('ZREM', p .. 'live', ARGV[2])
local h = load(ARGV[2])
if not h then return 0 end
forget(ARGV[2], h)
return 1
"#;

/// ARGV: prefix.
const COUNT_LIVE: &str = r#"
return redis.call('ZCOUNT', p .. 'live', '(' .. n2s(now_ms()), '+inf')
"#;

/// ARGV: prefix, window ms. Drops index entries of forgotten tunnels
/// (their keys have expired).
const SWEEP: &str = r#"
return redis.call('ZREMRANGEBYSCORE', p .. 'live', '-inf', n2s(now_ms() - tonumber(ARGV[2])))
"#;

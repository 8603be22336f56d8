//! `httvps status` and `httvps streams`: read the running instance's table
//! (`httvps streams --close KEY` closes one of its connections).

use std::process::ExitCode;

use anyhow::Context;
use engine::control::{self, ControlError, default_control_file, fetch_snapshot};
use serde_json::Value;

use crate::args::{Global, StatusArgs, StreamsArgs};
use crate::output::human_bytes;

fn control_file(global: &Global) -> std::path::PathBuf {
    global
        .control_file
        .clone()
        .unwrap_or_else(default_control_file)
}

async fn snapshot(global: &Global) -> anyhow::Result<Value> {
    fetch_snapshot(&control_file(global))
        .await
        .context("is `httvps connect` or `httvps demo` running?")
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

pub async fn status(global: &Global, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let snap = snapshot(global).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
        return Ok(ExitCode::SUCCESS);
    }
    let state = &snap["state"];
    println!("state:    {}", state["state"].as_str().unwrap_or("?"));
    if let Some(gw) = state["gateway"].as_str() {
        println!("gateway:  {gw}");
        println!("session:  {}", state["session_id"].as_str().unwrap_or("?"));
    }
    if let Some(reason) = state["reason"].as_str().or(state["last_error"].as_str()) {
        println!("reason:   {reason}");
    }
    if let Some(addr) = snap["proxy_addr"].as_str() {
        println!("proxy:    {addr} (SOCKS5 and HTTP)");
    }
    for warning in snap["warnings"].as_array().into_iter().flatten() {
        if let Some(message) = warning["message"].as_str() {
            println!("WARNING:  {message}");
        }
    }
    let totals = &snap["totals"];
    println!(
        "streams:  {} open, {} total; ↑{} ↓{}",
        num(&totals["streams_open"]),
        num(&totals["streams_total"]),
        human_bytes(num(&totals["bytes_up"])),
        human_bytes(num(&totals["bytes_down"]))
    );
    Ok(ExitCode::SUCCESS)
}

/// `httvps streams --close KEY`: asks the running instance to close that
/// row's connection.
async fn close(global: &Global, key: u64, json: bool) -> anyhow::Result<ExitCode> {
    let row = match control::close_stream(&control_file(global), key).await {
        Ok(row) => row,
        Err(e @ ControlError::StreamGone(_)) => {
            return Err(anyhow::Error::new(e).context("see `httvps streams` for the open rows"));
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context("is `httvps connect` or `httvps demo` running?")
            );
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&row)?);
    } else {
        println!(
            "closing {key} ({}); it ends as \"{}\"",
            row["target"].as_str().unwrap_or("?"),
            engine::table::CLOSED_ON_REQUEST
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn streams(global: &Global, args: StreamsArgs) -> anyhow::Result<ExitCode> {
    if let Some(key) = args.close {
        return close(global, key, args.json).await;
    }
    let snap = snapshot(global).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"open": snap["open"], "closed": snap["closed"]})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<6} {:<6} {:<36} {:<16} {:>10} {:>10} {:>12} {:<8} REASON",
        "KEY", "ID", "TARGET", "ROUTE", "UP", "DOWN", "RATE ↓/s", "STATE"
    );
    let rows = snap["open"].as_array().into_iter().flatten().chain(
        snap["closed"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .take(20),
    );
    for s in rows {
        println!(
            "{:<6} {:<6} {:<36} {:<16} {:>10} {:>10} {:>12} {:<8} {}",
            num(&s["key"]),
            s["stream_id"].as_str().unwrap_or("-"),
            s["target"].as_str().unwrap_or("?"),
            route_column(s),
            human_bytes(num(&s["bytes_up"])),
            human_bytes(num(&s["bytes_down"])),
            human_bytes(s["rate_down"].as_f64().unwrap_or(0.0) as u64),
            s["state"].as_str().unwrap_or("?"),
            s["close_reason"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `direct (rule 2)`, `tunnel` (the default decided), or `-` for rows the
/// routing rules do not judge (DNS, inbound); the whole rule is in `--json`.
fn route_column(row: &serde_json::Value) -> String {
    let Some(route) = row["route"].as_str() else {
        return "-".to_owned();
    };
    let number = row["rule"]
        .as_str()
        .and_then(|rule| rule.strip_prefix("rule "))
        .and_then(|rest| rest.split_once(':'))
        .map(|(n, _)| n);
    match number {
        Some(n) => format!("{route} (rule {n})"),
        None => route.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::route_column;
    use serde_json::json;

    #[test]
    fn the_route_column_names_the_rule_number() {
        let row = json!({"route": "direct", "rule": "rule 2: domain-suffix corp.example → direct"});
        assert_eq!(route_column(&row), "direct (rule 2)");
        let row = json!({"route": "tunnel", "rule": "default → tunnel"});
        assert_eq!(route_column(&row), "tunnel");
        assert_eq!(route_column(&json!({"route": null, "rule": null})), "-");
    }
}

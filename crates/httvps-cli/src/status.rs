//! `httvps status` and `httvps streams`: read the running instance's table.

use std::process::ExitCode;

use anyhow::Context;
use engine::control::{default_control_file, fetch_snapshot};
use serde_json::Value;

use crate::args::{Global, StatusArgs};
use crate::output::human_bytes;

async fn snapshot(global: &Global) -> anyhow::Result<Value> {
    let file = global
        .control_file
        .clone()
        .unwrap_or_else(default_control_file);
    fetch_snapshot(&file)
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

pub async fn streams(global: &Global, args: StatusArgs) -> anyhow::Result<ExitCode> {
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
        "{:<6} {:<36} {:>10} {:>10} {:>12} {:<8} REASON",
        "ID", "TARGET", "UP", "DOWN", "RATE ↓/s", "STATE"
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
            "{:<6} {:<36} {:>10} {:>10} {:>12} {:<8} {}",
            s["stream_id"].as_str().unwrap_or("-"),
            s["target"].as_str().unwrap_or("?"),
            human_bytes(num(&s["bytes_up"])),
            human_bytes(num(&s["bytes_down"])),
            human_bytes(s["rate_down"].as_f64().unwrap_or(0.0) as u64),
            s["state"].as_str().unwrap_or("?"),
            s["close_reason"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

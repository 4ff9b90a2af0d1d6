//! The model owner's side as a program: serve a compiled plan on loopback.
//!
//! ```text
//! cargo run -p c3d-runtime --example serve -- plan.bin [127.0.0.1:7878] [SESSIONS]
//! ```

use c3d_runtime::party::{Server, ServerConfig};
use std::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let plan = args.next().ok_or("usage: serve PLAN [ADDR] [SESSIONS]")?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7878".into());
    let sessions = args.next().map(|s| s.parse()).transpose()?;
    // Weights: PLAN.weights beside the plan.
    let server = Server::load(plan.as_ref(), None)?
        .with_config(ServerConfig {
            sessions,
            ..ServerConfig::default()
        })?
        .on_session(|o| match o.result {
            Ok(r) => eprintln!("session {} ({}): {} bytes sent", o.id, o.peer, r.bytes_sent),
            Err(e) => eprintln!("session {} ({}) failed: {e}", o.id, o.peer),
        });
    eprintln!("serving `{}` on {addr}", server.name());
    server.serve(TcpListener::bind(&addr)?)?;
    Ok(())
}

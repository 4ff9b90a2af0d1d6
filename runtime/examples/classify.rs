//! The video owner's side as a program: classify a clip against a running server.
//!
//! ```text
//! cargo run -p c3d-runtime --example classify -- plan.bin clip.mp4 [127.0.0.1:7878]
//! ```

use c3d_runtime::party::{load_plan, Client};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (plan, clip) = match (args.next(), args.next()) {
        (Some(p), Some(c)) => (p, c),
        _ => return Err("usage: classify PLAN CLIP [ADDR]".into()),
    };
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7878".into());
    // The public plan only: a weights file given here is refused.
    let plan = load_plan(plan.as_ref())?;
    let input = plan.graph.node(plan.graph.io()?.0).shape.clone();
    let x = c3d_runtime::video::load_clip(clip.as_ref(), &plan.meta.preprocess, &input)?;
    let prediction = Client::connect(&addr, plan)?
        .on_progress(|p| {
            if p.event.index + 1 == p.event.total && p.event.part.is_none() {
                eprintln!("{} phase: last step", p.event.phase.name());
            }
        })
        .infer(&x)?;
    for c in prediction.top.iter().take(3) {
        println!("{:>6.2}%  {}", c.probability * 100.0, c.label);
    }
    let r = &prediction.report;
    println!("{} bytes sent, {} received", r.bytes_sent, r.bytes_received);
    Ok(())
}

//! c3d-run: the two-party runtime. Not built yet: this binary checks the plan it is given and
//! says so, so that scripts written against the final interface fail clearly.

use miette::{miette, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") || args.is_empty() {
        println!("c3d-run --role server|client plan.bin [CLIP]\n\nThe two-party runtime is not built yet; use `c3dc simulate` for the plaintext reference.");
        return Ok(());
    }
    if let Some(plan) = args.iter().find(|a| a.ends_with(".bin")) {
        let (p, hash) = c3d_ir::Plan::load(&PathBuf::from(plan)).map_err(|e| miette!("{e}"))?;
        eprintln!(
            "plan `{}` ok (hash {})",
            p.meta.name,
            &c3d_ir::format::hex(&hash)[..16]
        );
    }
    Err(miette!("the two-party runtime is not built yet; `c3dc simulate` runs the plaintext fixed-point reference"))
}

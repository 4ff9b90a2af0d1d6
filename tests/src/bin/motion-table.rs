//! motion-table: evaluates the bundled trained models (models/motion/) and writes the
//! accuracy table, `accuracy.json` (every prediction, for the regeneration test) and
//! `accuracy.md`, into that folder. Usage: motion-table [SECURE_CLIPS] (default 10), or
//! `motion-table --render` to rewrite accuracy.md from accuracy.json.

#![forbid(unsafe_code)]

use c3d_tests::motion_table::{
    evaluate, markdown, models_dir, rows, test_split, Table, TEST_CLIPS,
};

fn main() {
    let dir = models_dir();
    if std::env::args().nth(1).as_deref() == Some("--render") {
        let table: Table = std::fs::read(dir.join("accuracy.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| {
                eprintln!("motion-table: accuracy.json: {e}");
                std::process::exit(1)
            });
        let md = markdown(&table);
        if let Err(e) = c3d_ir::format::write_atomic(&dir.join("accuracy.md"), md.as_bytes()) {
            eprintln!("motion-table: writing accuracy.md: {e}");
            std::process::exit(1);
        }
        print!("{md}");
        return;
    }
    let secure: usize = match std::env::args().nth(1) {
        None => 10,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("motion-table: SECURE_CLIPS must be a number, got `{a}`");
            std::process::exit(2)
        }),
    };
    let test = test_split(TEST_CLIPS);
    let t0 = std::time::Instant::now();
    let mut table = Table {
        labels: test.iter().map(|(_, y)| *y as u8).collect(),
        rows: Vec::new(),
    };
    for spec in rows() {
        eprintln!(
            "[motion-table] {} ({:.0} s)",
            spec.label,
            t0.elapsed().as_secs_f64()
        );
        table
            .rows
            .push(evaluate(&dir, &spec, &test, secure, &mut |m| {
                eprintln!("[motion-table] {m}")
            }));
    }
    let json = serde_json::to_string(&table).expect("serialise");
    let md = markdown(&table);
    for (name, body) in [
        ("accuracy.json", json.as_bytes()),
        ("accuracy.md", md.as_bytes()),
    ] {
        if let Err(e) = c3d_ir::format::write_atomic(&dir.join(name), body) {
            eprintln!("motion-table: writing {name}: {e}");
            std::process::exit(1);
        }
    }
    print!("{md}");
    eprintln!("[motion-table] done in {:.0} s", t0.elapsed().as_secs_f64());
}

//! Writes the seed corpus: `fuzz-seeds DIR` creates DIR/<target>/<name> for every seed.
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz-seeds DIR   (writes DIR/<target>/<seed>)");
        std::process::exit(2);
    };
    let seeds = warren_fuzz::seeds::all();
    for s in &seeds {
        let target = dir.join(s.target);
        std::fs::create_dir_all(&target)?;
        std::fs::write(target.join(&s.name), &s.bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), dir.display());
    Ok(())
}

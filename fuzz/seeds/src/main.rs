//! `confidant-fuzz-seeds OUT_DIR`: writes every fuzz target's seed corpus to `OUT_DIR/<target>/`
//! (scripts/fuzz.sh runs it before fuzzing).

fn main() -> anyhow::Result<()> {
    let Some(out) = std::env::args_os().nth(1) else {
        anyhow::bail!("usage: confidant-fuzz-seeds OUT_DIR");
    };
    let counts = confidant_fuzz_seeds::write_all(std::path::Path::new(&out))?;
    for (target, n) in counts {
        println!("{target}: {n} seeds");
    }
    Ok(())
}

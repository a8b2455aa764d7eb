//! Links the functions a steady tick runs next to each other (issue 20: resident memory).
//!
//! Most of the agent's resident memory is its own code, mapped from the page cache. A page
//! fault on code maps the whole 64 KiB around it (the kernel's fault-around, which madvise
//! does not turn off), and the linker scattered the ~1,300 functions a tick runs over the 5 MiB
//! text segment, so a tick kept 90 % of it mapped. `layout/hot-code.txt` names those functions
//! (captured by `bench/hotcode.sh`); the linker script written here puts them first, in one
//! output section before `.text`, so a tick's code is 1.7 contiguous MiB (bench/README.md,
//! ninth round: VmRSS 7.9 → 5.6 MiB with every collector).
//!
//! Only optimised builds, linked by GNU ld or lld (both take `SECTIONS … INSERT BEFORE`; mold's
//! script support does not cover SECTIONS, so a build with mold keeps its own order); a debug
//! build's layout is nobody's resident set. A name missing from the build (renamed, inlined)
//! matches nothing and costs nothing: the list can only be stale, never wrong.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

/// The output section the hot functions go to (`readelf -S` shows it; the package test checks
/// it is there).
const SECTION: &str = ".text.hostwarden_tick";

fn main() {
    let list = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("layout")
        .join("hot-code.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=HOSTWARDEN_NO_CODE_LAYOUT");
    let optimised = env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|o| o == "linux")
        && env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "gnu");
    let mold = env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("mold"));
    if !optimised || !linux_gnu || mold || env::var_os("HOSTWARDEN_NO_CODE_LAYOUT").is_some() {
        return;
    }
    let text = fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("{}: cannot read the hot-code list: {e}", list.display()));
    let script = linker_script(&text);
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("hot-code.ld");
    fs::write(&out, script).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    println!(
        "cargo:rustc-link-arg-bin=hostwarden=-Wl,-T,{}",
        out.display()
    );
}

/// One input-section pattern per listed name (`#` lines and blank lines skipped). A pattern
/// holds only characters a linker script takes unquoted, so the names are checked here, not
/// at link time with a less helpful message.
fn linker_script(list: &str) -> String {
    let mut script = format!("SECTIONS\n{{\n  {SECTION} :\n  {{\n");
    for (n, line) in list.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_$.*".contains(&b)),
            "layout/hot-code.txt:{}: `{name}` is not a symbol pattern (letters, digits, _ $ . *)",
            n + 1
        );
        // A function LLVM knows to be cold (`#[cold]`: a vector's growth, a hash table's
        // rehash, a contended lock) is in `.text.unlikely.*`, which the default script puts
        // elsewhere; one a tick runs now and then is as hot here as any other.
        writeln!(script, "    *(.text.{name} .text.unlikely.{name})")
            .expect("writing to a String cannot fail");
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
}

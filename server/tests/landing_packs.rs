//! The `switchyard` binary as the landing packs' compressor (`http/landing_packs.rs`): the server
//! runs itself with `compress-landing-pack` for each pack, so that brotli's working memory is never
//! part of the server's.

use std::io::Write;
use std::process::{Command, Stdio};

use switchyard_server::http::landing_packs::COMPRESS_COMMAND;

#[test]
fn the_binary_compresses_its_input_to_brotli_that_reads_back_the_same() {
    // Something shaped like wasm: repeated sections with variations.
    let raw: Vec<u8> = (0..300_000u32)
        .map(|i| ((i % 251) ^ (i / 4096)) as u8)
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg(COMPRESS_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert!(
        output.stdout.len() < raw.len() / 10,
        "compressed: {} B",
        output.stdout.len()
    );
    let mut back = Vec::new();
    brotli::BrotliDecompress(&mut &output.stdout[..], &mut back).unwrap();
    assert_eq!(back, raw);
}

//! `oms-openapi`: writes the generated OpenAPI document to `functions/query/openapi.json`
//! (or prints it with `--stdout`). The crate's test fails while the committed file differs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let json = oms_api::to_json();
    if std::env::args().any(|a| a == "--stdout") {
        print!("{json}");
        return ExitCode::SUCCESS;
    }
    let path = oms_api::workspace_root().join(oms_api::DOCUMENT_PATH);
    match std::fs::write(&path, json) {
        Ok(()) => {
            eprintln!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oms-openapi: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

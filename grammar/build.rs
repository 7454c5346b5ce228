fn main() {
    // `src/eql.lalrpop` -> `$OUT_DIR/eql.rs`, rebuilt only when the grammar changes.
    lalrpop::Configuration::new().use_cargo_dir_conventions().emit_rerun_directives(true).process().unwrap();
}

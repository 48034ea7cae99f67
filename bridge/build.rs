//! Rebuild when migrations change: `embed_migrations!` cannot see new files on its own.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../config/default.toml");
}

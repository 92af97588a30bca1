//! Link flags for the plugin library.

fn main() {
    // Never unload the library (ELF `DF_1_NODELETE`). Threads that ran plugin code (the host's
    // audio thread, nice-plug's background thread) keep thread-local destructors pointing into
    // it; if a host dlclose()s the library after destroying the last instance, those threads
    // crash when they exit (seen in the in-process host tests). Hosts keep plugin libraries
    // loaded anyway, so this costs nothing.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(os.as_str(), "linux" | "freebsd" | "netbsd" | "openbsd" | "dragonfly") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

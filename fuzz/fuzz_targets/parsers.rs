//! The pure parsers on arbitrary bytes: argv scanning, monitor port specs, C
//! number parsing and the AUTOSSH_* variables. None may panic, and every
//! refusal must be one of the documented messages.
#![no_main]

use autossh::args::{self, Request};
use autossh::cnum;
use autossh::config::{Config, LogSettings};
use libfuzzer_sys::fuzz_target;

const VARIABLES: [&str; 10] = [
    "AUTOSSH_GATETIME",
    "AUTOSSH_POLL",
    "AUTOSSH_FIRST_POLL",
    "AUTOSSH_MAXSTART",
    "AUTOSSH_MAXLIFETIME",
    "AUTOSSH_MESSAGE",
    "AUTOSSH_PORT",
    "AUTOSSH_PATH",
    "AUTOSSH_PIDFILE",
    "AUTOSSH_LOGLEVEL",
];

const MESSAGES: [&str; 7] = [
    "invalid gate time \"",
    "invalid poll time \"",
    "invalid first poll time \"",
    "invalid max start number \"",
    "invalid max lifetime \"",
    "echo message may only be 64 bytes long",
    "invalid log level \"",
];

fuzz_target!(|data: &[u8]| {
    // NUL separates the pieces: argv, then one value per variable.
    let pieces: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let split = pieces.len() / 2;
    let argv: Vec<Vec<u8>> = pieces[..split].iter().map(|p| p.to_vec()).collect();
    let values = &pieces[split..];

    if let Ok(Request::Run(scanned)) = args::scan(&argv) {
        // Arguments are only passed on or shortened, never invented.
        assert!(scanned.ssh_args.len() <= argv.len());
        for a in &scanned.ssh_args {
            assert!(argv.iter().any(|g| g.len() >= a.len()));
        }
        if let Some(spec) = &scanned.monitor {
            if let Err(m) = args::parse_monitor(spec) {
                assert!(
                    m.starts_with("invalid port \"")
                        || m.starts_with("invalid echo port  \"")
                        || m.starts_with("monitor port (")
                );
            }
        }
    }

    for v in values {
        let _ = cnum::parse_int(v);
        let _ = cnum::parse_ulong(v);
        let _ = args::parse_monitor(v);
    }
    let lookup = |name: &str| {
        VARIABLES
            .iter()
            .position(|v| *v == name)
            .and_then(|i| values.get(i))
            .map(|v| v.to_vec())
    };
    if let Err(m) = Config::from_lookup(&lookup) {
        assert!(MESSAGES.iter().any(|p| m.starts_with(p)), "{m}");
    }
    if let Err((_, m)) = LogSettings::from_lookup(&lookup) {
        assert!(m.starts_with("invalid log level \""), "{m}");
    }
});

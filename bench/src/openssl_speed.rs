//! The machine's RSA-2048 signing limit, from `openssl speed` run in the same session.

use std::process::Command;

use crate::error::Error;

/// What one `openssl speed rsa2048` run reported.
#[derive(Debug, Clone, Copy)]
pub struct RsaSpeed {
    /// Signatures per second (all processes together with `-multi`).
    pub sign_per_s: f64,
    /// Verifications per second.
    pub verify_per_s: f64,
}

/// Runs `openssl speed -seconds SECS [-multi N] rsa2048` and parses its summary line.
pub fn rsa2048(seconds: u32, multi: Option<usize>) -> Result<RsaSpeed, Error> {
    let mut command = Command::new("openssl");
    command.args(["speed", "-seconds", &seconds.to_string()]);
    if let Some(n) = multi {
        command.args(["-multi", &n.to_string()]);
    }
    let output = command.arg("rsa2048").output()?;
    if !output.status.success() {
        return Err(Error::Setup(format!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| Error::Setup("openssl speed printed no `rsa 2048 bits` line".into()))
}

/// Parses `rsa 2048 bits 0.000315s 0.000020s   3172.0  50919.0` (sign time, verify time,
/// sign/s, verify/s).
fn parse(stdout: &str) -> Option<RsaSpeed> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("rsa 2048 bits"))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .skip(3)
        .filter_map(|t| t.trim_end_matches('s').parse().ok())
        .collect();
    match numbers.as_slice() {
        [_, _, sign, verify, ..] => Some(RsaSpeed {
            sign_per_s: *sign,
            verify_per_s: *verify,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_line_of_openssl_3() {
        let out = "                  sign    verify    sign/s verify/s\n\
                   rsa 2048 bits 0.000315s 0.000020s   3172.0  50919.0\n";
        let speed = parse(out).expect("parsed");
        assert_eq!(speed.sign_per_s, 3172.0);
        assert_eq!(speed.verify_per_s, 50919.0);
        assert!(parse("no rsa here").is_none());
    }
}

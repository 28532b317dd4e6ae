//! `jubectl hash-password`: a password read from standard input (one
//! line, its line ending dropped) hashed with argon2id, OWASP's
//! parameters (19 MiB, two passes, one lane) and a random 16-byte salt,
//! printed as the PHC string a `[[users]]` entry's `password_hash` takes
//! (design 13.1). The password is never echoed or stored.

use std::io::BufRead as _;
use std::process::ExitCode;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};

use crate::exit;

pub(crate) fn run() -> ExitCode {
    let mut line = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("jubectl hash-password: cannot read standard input: {error}");
        return ExitCode::from(exit::OPERATING_ERROR);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!(
            "jubectl hash-password: give a password on standard input, e.g. `printf %s \"$PASSWORD\" | jubectl hash-password`"
        );
        return ExitCode::from(exit::USAGE);
    }
    let salt = SaltString::generate(&mut OsRng);
    match Argon2::default().hash_password(password.as_bytes(), &salt) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            eprintln!("jubectl hash-password: {error}");
            ExitCode::from(exit::OPERATING_ERROR)
        }
    }
}

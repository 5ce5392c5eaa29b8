//! Login rate limiting: too many failed logins for one username from one
//! address, or from one address overall, lock further tries for a while.
//!
//! Kept in memory per node: an attacker spreading tries over N nodes gets N
//! times the budget, still far too little for guessing an argon2-hashed
//! password.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per (address, username) within the window.
const PER_USER: u32 = 5;
/// Failures allowed per address within the window.
const PER_ADDRESS: u32 = 30;
const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// `Err(seconds)` to wait when the address or username is locked.
    pub fn check(&self, address: &str, username: &str) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (key, limit) in [(user_key(address, username), PER_USER), (address.to_string(), PER_ADDRESS)] {
            if let Some((count, since)) = failures.get(&key)
                && *count >= limit
                && now.duration_since(*since) < WINDOW
            {
                return Err((WINDOW - now.duration_since(*since)).as_secs().max(1));
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, address: &str, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Forget old entries so the map cannot grow without bound.
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        for key in [user_key(address, username), address.to_string()] {
            let entry = failures.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= WINDOW {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    pub fn record_success(&self, address: &str, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&user_key(address, username));
    }
}

/// At most `limit` hits per key within a fixed window that starts with the
/// key's first hit (public forms: per IP address, per email address).
pub struct WindowLimiter {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (u32, Instant)>>,
}

impl WindowLimiter {
    pub fn new(limit: u32, window: Duration) -> WindowLimiter {
        WindowLimiter { limit, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Counts a hit; `Err(seconds)` to wait when the key used its budget
    /// (the refused hit is not counted).
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if hits.len() > 100_000 {
            hits.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        }
        let entry = hits.entry(key.to_string()).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        if entry.0 >= self.limit {
            return Err((self.window - now.duration_since(entry.1)).as_secs().max(1));
        }
        entry.0 += 1;
        Ok(())
    }
}

fn user_key(address: &str, username: &str) -> String {
    format!("{address}\u{0}{}", username.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_per_user() {
        let limiter = LoginLimiter::default();
        for _ in 0..PER_USER {
            assert!(limiter.check("1.2.3.4", "ann").is_ok());
            limiter.record_failure("1.2.3.4", "ann");
        }
        let wait = limiter.check("1.2.3.4", "Ann").expect_err("locked");
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert!(limiter.check("1.2.3.4", "bob").is_ok());
        assert!(limiter.check("5.6.7.8", "ann").is_ok());
    }

    #[test]
    fn window_limiter_refuses_beyond_the_limit_per_key() {
        let limiter = WindowLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.hit("a").is_ok());
        assert!(limiter.hit("a").is_ok());
        let wait = limiter.hit("a").expect_err("limited");
        assert!(wait > 0 && wait <= 60);
        assert!(limiter.hit("b").is_ok());
    }
}

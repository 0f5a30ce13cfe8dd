//! Resource sets in fixed point, so fractional demands (`num_cpus = 0.25`) add and subtract
//! exactly.

use std::fmt;
use std::sync::Arc;

/// Units per whole resource (1 CPU = 10,000 units).
pub const SCALE: u64 = 10_000;

/// A resource's name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ResourceName {
    /// `CPU`.
    Cpu,
    /// `GPU`.
    Gpu,
    /// `memory` (bytes).
    Memory,
    /// A custom resource.
    Custom(Arc<str>),
}

impl ResourceName {
    /// Parses Ray's spelling (`CPU`, `GPU`, `memory`, anything else is custom).
    pub fn parse(s: &str) -> Self {
        match s {
            "CPU" => ResourceName::Cpu,
            "GPU" => ResourceName::Gpu,
            "memory" => ResourceName::Memory,
            other => ResourceName::Custom(Arc::from(other)),
        }
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceName::Cpu => f.write_str("CPU"),
            ResourceName::Gpu => f.write_str("GPU"),
            ResourceName::Memory => f.write_str("memory"),
            ResourceName::Custom(s) => f.write_str(s),
        }
    }
}

/// A set of resource amounts (sorted by name, zero amounts omitted).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ResourceSet {
    items: Vec<(ResourceName, u64)>,
}

impl ResourceSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `amount` (whole units, fractional allowed); builder style.
    pub fn with(mut self, name: ResourceName, amount: f64) -> Self {
        self.set(name, amount);
        self
    }

    /// Sets `name` to `amount`.
    pub fn set(&mut self, name: ResourceName, amount: f64) {
        let units = to_units(amount);
        self.set_units(name, units);
    }

    fn set_units(&mut self, name: ResourceName, units: u64) {
        match self.items.binary_search_by(|(n, _)| n.cmp(&name)) {
            Ok(i) if units == 0 => {
                self.items.remove(i);
            }
            Ok(i) => self.items[i].1 = units,
            Err(_) if units == 0 => {}
            Err(i) => self.items.insert(i, (name, units)),
        }
    }

    /// The amount of `name` (whole units).
    pub fn get(&self, name: &ResourceName) -> f64 {
        self.units(name) as f64 / SCALE as f64
    }

    fn units(&self, name: &ResourceName) -> u64 {
        self.items
            .binary_search_by(|(n, _)| n.cmp(name))
            .map(|i| self.items[i].1)
            .unwrap_or(0)
    }

    /// True when nothing is demanded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when every amount here is available in `avail`.
    pub fn fits_in(&self, avail: &ResourceSet) -> bool {
        self.items.iter().all(|(n, u)| avail.units(n) >= *u)
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ResourceSet) {
        for (n, u) in &other.items {
            let cur = self.units(n);
            self.set_units(n.clone(), cur + u);
        }
    }

    /// Subtracts `other` (saturating at zero).
    pub fn sub(&mut self, other: &ResourceSet) {
        for (n, u) in &other.items {
            let cur = self.units(n);
            self.set_units(n.clone(), cur.saturating_sub(*u));
        }
    }

    /// Subtracts as much of `other` as is available and returns the shortfall (what could
    /// not be subtracted).
    pub fn sub_with_shortfall(&mut self, other: &ResourceSet) -> ResourceSet {
        let mut short = ResourceSet::new();
        for (n, u) in &other.items {
            let cur = self.units(n);
            let take = cur.min(*u);
            self.set_units(n.clone(), cur - take);
            short.set_units(n.clone(), u - take);
        }
        short
    }

    /// Pays `amount` against the debt in `self`; returns what is left of `amount` after the
    /// debt is paid.
    pub fn settle(&mut self, amount: &ResourceSet) -> ResourceSet {
        let mut rest = ResourceSet::new();
        for (n, u) in &amount.items {
            let debt = self.units(n);
            let pay = debt.min(*u);
            self.set_units(n.clone(), debt - pay);
            rest.set_units(n.clone(), u - pay);
        }
        rest
    }

    /// `(name, amount)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceName, f64)> {
        self.items
            .iter()
            .map(|(n, u)| (n, *u as f64 / SCALE as f64))
    }
}

fn to_units(amount: f64) -> u64 {
    if amount <= 0.0 || !amount.is_finite() {
        0
    } else {
        (amount * SCALE as f64).round() as u64
    }
}

impl fmt::Display for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, a)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}: {a}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_amounts_add_up_exactly() {
        let mut avail = ResourceSet::new().with(ResourceName::Cpu, 1.0);
        let quarter = ResourceSet::new().with(ResourceName::Cpu, 0.25);
        for _ in 0..4 {
            assert!(quarter.fits_in(&avail));
            avail.sub(&quarter);
        }
        assert!(!quarter.fits_in(&avail));
        assert!(avail.is_empty());
        let gpu = ResourceSet::new().with(ResourceName::parse("GPU"), 1.0);
        assert!(!gpu.fits_in(&avail));
        assert_eq!(format!("{quarter}"), "{CPU: 0.25}");
    }
}

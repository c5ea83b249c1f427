//! [`FixedList`], the bounded list the parsers fill. Its own file so that both the TLS parser
//! and the certificate reader (which the TLS scratch holds a cache of) can use it.

/// A list with a fixed capacity that counts what did not fit instead of failing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FixedList<T: Copy + Default, const N: usize> {
    len: u16,
    total: u16,
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for FixedList<T, N> {
    fn default() -> Self {
        FixedList {
            len: 0,
            total: 0,
            items: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> FixedList<T, N> {
    pub fn push(&mut self, v: T) {
        if let Some(slot) = self.items.get_mut(self.len as usize) {
            *slot = v;
            self.len += 1;
        }
        self.total = self.total.saturating_add(1);
    }

    /// The items kept, in wire order.
    pub fn as_slice(&self) -> &[T] {
        self.items.get(..self.len as usize).unwrap_or(&[])
    }

    /// How many items were on the wire (may exceed the capacity).
    pub fn total(&self) -> usize {
        self.total as usize
    }

    /// True when the wire carried more items than fit.
    pub fn overflowed(&self) -> bool {
        self.total > self.len
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn contains(&self, v: &T) -> bool
    where
        T: PartialEq,
    {
        self.as_slice().contains(v)
    }
}

impl<T: Copy + Default + std::fmt::Debug, const N: usize> std::fmt::Debug for FixedList<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()?;
        if self.overflowed() {
            write!(f, "+{}", self.total - self.len)?;
        }
        Ok(())
    }
}

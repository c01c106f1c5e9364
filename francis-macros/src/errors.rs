//! [`Errors`]: collects `syn::Error`s so one compile run reports every misuse at once.

use proc_macro2::TokenStream;

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub struct Errors(pub Option<syn::Error>);

impl Errors {
    /// Record an error spanned on `tokens`.
    pub fn add(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Record an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// All recorded errors as `compile_error!` invocations (nothing if there are none).
    pub fn to_compile_error(&self) -> TokenStream {
        self.0
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }

    /// `Ok(value)` if nothing was recorded.
    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

//! Procedural macros of the axion SDK; use them through `axion::trace` and `axion::HasTracer`.
//!
//! Argument parsing (`args`) and code generation (`expand`) are kept apart, so every
//! mistake in `#[trace(...)]` is reported at the offending token before any code is generated.

use proc_macro::TokenStream;

mod args;
mod derive;
mod expand;

/// Wraps a function (sync or async, free or method) in a span.
///
/// Arguments, all optional:
/// * `name = "..."`: the span name (default: the function name);
/// * `capture_args`: record the arguments (not `self`) as a JSON object keyed by parameter
///   name; values that implement `Serialize` as JSON, else their `Debug` text, else `<Type>`;
/// * `skip(a, b)`: with `capture_args`, leave these parameters out;
/// * `capture_result`: record the return value (the `Ok` value of a `Result`) as the output;
/// * `span_type = "generation"`: the observation type (otherwise inferred from the name).
///
/// A function returning `Result` marks the span `ERROR` with the error's message on `Err`. A
/// panic marks the span failed and keeps unwinding.
#[proc_macro_attribute]
pub fn trace(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemFn);
    let args = match args::TraceArgs::parse(attr.into(), &item) {
        Ok(args) => args,
        Err(error) => return error.to_compile_error().into(),
    };
    expand::expand(args, item).into()
}

/// Implements `axion::HasTracer` for a struct with a field named `tracer` or marked `#[tracer]`.
#[proc_macro_derive(HasTracer, attributes(tracer))]
pub fn derive_has_tracer(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    derive::has_tracer(input)
        .unwrap_or_else(|error| error.to_compile_error())
        .into()
}

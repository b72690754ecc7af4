//! Parsing and validating `#[trace(...)]` arguments.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, Signature, Token};

/// The observation types `span_type` accepts, as written in Rust (`ObservationType::…`).
const SPAN_TYPES: &[(&str, &str)] = &[
    ("span", "Span"),
    ("generation", "Generation"),
    ("event", "Event"),
    ("agent", "Agent"),
    ("tool", "Tool"),
    ("chain", "Chain"),
    ("retriever", "Retriever"),
    ("evaluator", "Evaluator"),
    ("embedding", "Embedding"),
    ("guardrail", "Guardrail"),
];

pub(crate) struct TraceArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) capture_args: bool,
    pub(crate) capture_result: bool,
    pub(crate) skip: Vec<Ident>,
    /// The `ObservationType` variant name.
    pub(crate) span_type: Option<Ident>,
}

enum Arg {
    Name(Ident, LitStr),
    Flag(Ident),
    Skip(Ident, Vec<Ident>),
    SpanType(Ident, LitStr),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        match key.to_string().as_str() {
            "name" | "span_type" => {
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse().map_err(|error| {
                    syn::Error::new(error.span(), format!("`{key}` takes a string literal, e.g. `{key} = \"...\"`"))
                })?;
                Ok(if key == "name" { Arg::Name(key, value) } else { Arg::SpanType(key, value) })
            }
            "capture_args" | "capture_result" => Ok(Arg::Flag(key)),
            "skip" => {
                let content;
                syn::parenthesized!(content in input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                Ok(Arg::Skip(key, names.into_iter().collect()))
            }
            _ => Err(syn::Error::new(
                key.span(),
                format!("unknown argument `{key}`; expected one of: name, capture_args, capture_result, skip, span_type"),
            )),
        }
    }
}

impl TraceArgs {
    pub(crate) fn parse(tokens: TokenStream, item: &ItemFn) -> syn::Result<Self> {
        let parsed = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut args = TraceArgs {
            name: None,
            capture_args: false,
            capture_result: false,
            skip: Vec::new(),
            span_type: None,
        };
        let mut seen: Vec<String> = Vec::new();
        let mut skip_key = None;
        for arg in parsed {
            let key = match &arg {
                Arg::Name(key, _) | Arg::Flag(key) | Arg::Skip(key, _) | Arg::SpanType(key, _) => {
                    key.clone()
                }
            };
            if seen.contains(&key.to_string()) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key}` is given more than once"),
                ));
            }
            seen.push(key.to_string());
            match arg {
                Arg::Name(_, value) => {
                    if value.value().trim().is_empty() {
                        return Err(syn::Error::new(
                            value.span(),
                            "the span name must not be empty",
                        ));
                    }
                    args.name = Some(value);
                }
                Arg::Flag(key) if key == "capture_args" => args.capture_args = true,
                Arg::Flag(_) => args.capture_result = true,
                Arg::Skip(key, names) => {
                    skip_key = Some(key);
                    args.skip = names;
                }
                Arg::SpanType(_, value) => {
                    let wanted = value.value().to_ascii_lowercase();
                    let variant = SPAN_TYPES
                        .iter()
                        .find(|(name, _)| *name == wanted)
                        .ok_or_else(|| {
                            let names: Vec<_> = SPAN_TYPES.iter().map(|(name, _)| *name).collect();
                            syn::Error::new(
                                value.span(),
                                format!(
                                    "unknown span_type {:?}; expected one of: {}",
                                    value.value(),
                                    names.join(", ")
                                ),
                            )
                        })?;
                    args.span_type = Some(Ident::new(variant.1, value.span()));
                }
            }
        }
        if let Some(key) = skip_key {
            if !args.capture_args {
                return Err(syn::Error::new(
                    key.span(),
                    "`skip` has no effect without `capture_args`",
                ));
            }
            let parameters = parameter_names(&item.sig);
            for name in &args.skip {
                if !parameters.iter().any(|parameter| parameter == name) {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("`{name}` is not a parameter of `{}`", item.sig.ident),
                    ));
                }
            }
        }
        Ok(args)
    }
}

/// Names of the function's parameters bound to a plain identifier (`self` excluded).
pub(crate) fn parameter_names(sig: &Signature) -> Vec<Ident> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) => Some(pat.ident.clone()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect()
}

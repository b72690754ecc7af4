//! Code generation for `#[trace]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type};

use crate::args::{parameter_names, TraceArgs};

pub(crate) fn expand(args: TraceArgs, item: ItemFn) -> TokenStream {
    if let Some(constness) = &item.sig.constness {
        return syn::Error::new(constness.span(), "#[trace] cannot be used on a `const fn`")
            .to_compile_error();
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&sig.ident.to_string(), sig.ident.span()));
    let kind = match &args.span_type {
        Some(variant) => quote!(::core::option::Option::Some(::axion::ObservationType::#variant)),
        None => quote!(::core::option::Option::None),
    };

    let tracer = match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            let this = if receiver.reference.is_some() || receiver.colon_token.is_some() {
                quote!(&*self)
            } else {
                quote!(&self)
            };
            quote!((&&::axion::__private::Probe(#this)).__axion_tracer())
        }
        _ => quote!(::axion::__private::context_tracer()),
    };

    let capture_args = if args.capture_args {
        let inserts = parameter_names(&sig)
            .into_iter()
            .filter(|parameter| !args.skip.contains(parameter))
            .map(|parameter| {
                let key = parameter.to_string();
                quote_spanned!(parameter.span()=> __axion_args.insert(
                    ::std::string::String::from(#key),
                    (&&&::axion::__private::Capture(&#parameter)).__axion_capture(),
                );)
            });
        quote! {
            if __axion_span.is_recording() {
                let mut __axion_args = ::axion::__private::serde_json::Map::new();
                #(#inserts)*
                __axion_span.set_input(::axion::__private::serde_json::Value::Object(__axion_args));
            }
        }
    } else {
        quote!()
    };

    let output_type = match &sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => None,
    };
    let annotation = match output_type {
        Some(ty) if !contains_impl_trait(ty) => quote!(: #ty),
        None => quote!(: ()),
        _ => quote!(),
    };
    let capture_value = |value: TokenStream| {
        if args.capture_result {
            quote!(__axion_span.set_output((&&&::axion::__private::Capture(#value)).__axion_capture());)
        } else {
            quote!()
        }
    };
    let handle_result = if output_type.is_some_and(is_result) {
        let capture_ok = capture_value(quote!(__axion_ok));
        quote! {
            match &__axion_result {
                ::core::result::Result::Ok(__axion_ok) => {
                    let _ = __axion_ok;
                    #capture_ok
                }
                ::core::result::Result::Err(__axion_err) => {
                    let __axion_message = (&&&::axion::__private::Capture(__axion_err)).__axion_message();
                    ::axion::__private::record_err(&__axion_span, __axion_err, __axion_message);
                }
            }
        }
    } else {
        capture_value(quote!(&__axion_result))
    };

    let prelude = quote! {
        #[allow(unused_imports)]
        use ::axion::__private::{
            CaptureDebug as _, CaptureOpaque as _, CaptureSerialize as _, ErrorDebug as _, ErrorDisplay as _,
            ErrorOpaque as _, ViaContext as _, ViaOwnTracer as _,
        };
        let __axion_tracer = if ::axion::__private::any_recording() { #tracer } else { ::core::option::Option::None };
        let __axion_span = ::axion::__private::start(__axion_tracer, #name, #kind);
        #capture_args
    };

    let body = if sig.asyncness.is_some() {
        quote! {
            #prelude
            let __axion_owner = ::axion::__private::own(__axion_span.clone());
            let __axion_result #annotation = ::axion::__private::instrument(&__axion_span, async move #block).await;
            if __axion_span.is_recording() {
                #handle_result
            }
            __axion_owner.complete();
            __axion_result
        }
    } else {
        quote! {
            #prelude
            let __axion_span = ::axion::__private::enter(__axion_span);
            #[allow(clippy::redundant_closure_call)]
            let __axion_result #annotation = (move || #block)();
            if __axion_span.is_recording() {
                #handle_result
            }
            __axion_result
        }
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// Whether the return type is spelled `Result<…>` (any path ending in `Result`).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Paren(inner) => is_result(&inner.elem),
        Type::Group(inner) => is_result(&inner.elem),
        _ => false,
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

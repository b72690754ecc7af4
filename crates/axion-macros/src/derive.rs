//! `#[derive(HasTracer)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

pub(crate) fn has_tracer(input: DeriveInput) -> syn::Result<TokenStream> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "`HasTracer` can only be derived for structs",
        ));
    };
    let marked = data.fields.iter().enumerate().find(|(_, field)| {
        field
            .attrs
            .iter()
            .any(|attr| attr.path().is_ident("tracer"))
    });
    let named = data
        .fields
        .iter()
        .enumerate()
        .find(|(_, field)| field.ident.as_ref().is_some_and(|ident| ident == "tracer"));
    let Some((index, field)) = marked.or(named) else {
        let hint = match data.fields {
            Fields::Named(_) => {
                "add a field named `tracer`, or mark the tracer field with `#[tracer]`"
            }
            _ => "mark the tracer field with `#[tracer]`",
        };
        return Err(syn::Error::new_spanned(
            &input.ident,
            format!("no tracer field found: {hint}"),
        ));
    };
    let access = match &field.ident {
        Some(ident) => quote!(#ident),
        None => {
            let index = syn::Index::from(index);
            quote!(#index)
        }
    };
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::axion::HasTracer for #name #type_generics #where_clause {
            fn tracer(&self) -> &::axion::Tracer {
                &self.#access
            }
        }
    })
}

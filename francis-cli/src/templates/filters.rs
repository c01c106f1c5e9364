//! The case-conversion filters cargo-generate adds to Liquid (`{{ name | pascal_case }}`, …),
//! with the same names and the same conversions (both use the `heck` crate), so a template
//! renders the same under `francis new` and under `cargo generate`.

use std::fmt;

use heck::{
    ToKebabCase, ToLowerCamelCase, ToPascalCase, ToShoutyKebabCase, ToShoutySnakeCase, ToSnakeCase,
    ToTitleCase, ToUpperCamelCase,
};
use liquid_core::parser::{FilterArguments, FilterReflection, ParameterReflection, ParseFilter};
use liquid_core::{Error, Filter, Result, Runtime, Value, ValueView};

/// One case filter: a Liquid filter name and its conversion.
#[derive(Clone, Copy)]
pub struct CaseFilter {
    name: &'static str,
    description: &'static str,
    convert: fn(&str) -> String,
}

/// Every case filter cargo-generate provides.
pub const CASE_FILTERS: &[CaseFilter] = &[
    CaseFilter {
        name: "kebab_case",
        description: "my-name",
        convert: |s| s.to_kebab_case(),
    },
    CaseFilter {
        name: "lower_camel_case",
        description: "myName",
        convert: |s| s.to_lower_camel_case(),
    },
    CaseFilter {
        name: "pascal_case",
        description: "MyName",
        convert: |s| s.to_pascal_case(),
    },
    CaseFilter {
        name: "shouty_kebab_case",
        description: "MY-NAME",
        convert: |s| s.to_shouty_kebab_case(),
    },
    CaseFilter {
        name: "shouty_snake_case",
        description: "MY_NAME",
        convert: |s| s.to_shouty_snake_case(),
    },
    CaseFilter {
        name: "snake_case",
        description: "my_name",
        convert: |s| s.to_snake_case(),
    },
    CaseFilter {
        name: "title_case",
        description: "My Name",
        convert: |s| s.to_title_case(),
    },
    CaseFilter {
        name: "upper_camel_case",
        description: "MyName",
        convert: |s| s.to_upper_camel_case(),
    },
];

impl CaseFilter {
    /// Apply the conversion (for callers outside templates).
    pub fn apply(&self, text: &str) -> String {
        (self.convert)(text)
    }
}

impl FilterReflection for CaseFilter {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for CaseFilter {
    fn parse(&self, mut arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        if arguments.positional.next().is_some() || arguments.keyword.next().is_some() {
            return Err(Error::with_msg(format!(
                "the {} filter takes no arguments",
                self.name
            )));
        }
        Ok(Box::new(Applied(*self)))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

/// A parsed [`CaseFilter`], ready to run.
struct Applied(CaseFilter);

impl fmt::Debug for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Filter for Applied {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        let scalar = input
            .as_scalar()
            .ok_or_else(|| Error::with_msg(format!("the {} filter needs a string", self.0.name)))?;
        let text = scalar.to_kstr();
        Ok(Value::scalar(self.0.apply(text.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, value: &str) -> String {
        let mut builder = liquid::ParserBuilder::with_stdlib();
        for filter in CASE_FILTERS {
            builder = builder.filter(*filter);
        }
        builder
            .build()
            .unwrap()
            .parse(template)
            .unwrap()
            .render(&liquid::object!({ "v": value }))
            .unwrap()
    }

    #[test]
    fn filters_convert_like_cargo_generate() {
        let v = "shopping_cart";
        assert_eq!(render("{{ v | pascal_case }}", v), "ShoppingCart");
        assert_eq!(render("{{ v | upper_camel_case }}", v), "ShoppingCart");
        assert_eq!(render("{{ v | lower_camel_case }}", v), "shoppingCart");
        assert_eq!(render("{{ v | kebab_case }}", v), "shopping-cart");
        assert_eq!(render("{{ v | shouty_kebab_case }}", v), "SHOPPING-CART");
        assert_eq!(render("{{ v | shouty_snake_case }}", v), "SHOPPING_CART");
        assert_eq!(render("{{ v | title_case }}", v), "Shopping Cart");
        assert_eq!(
            render("{{ v | snake_case }}", "ShoppingCart"),
            "shopping_cart"
        );
        assert_eq!(render("{{v|snake_case}}", "my-app"), "my_app");
    }

    #[test]
    fn a_filter_with_arguments_is_refused() {
        let mut builder = liquid::ParserBuilder::with_stdlib();
        for filter in CASE_FILTERS {
            builder = builder.filter(*filter);
        }
        let parser = builder.build().unwrap();
        let Err(e) = parser.parse("{{ v | snake_case: 1 }}") else {
            panic!("a filter with an argument parsed")
        };
        assert!(e.to_string().contains("takes no arguments"), "{e}");
    }
}

//! ERP API tests.

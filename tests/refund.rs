//! refund tests: the real OMS components through `oms up` over HTTP.

mod support;

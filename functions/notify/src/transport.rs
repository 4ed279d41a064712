//! Sending a webhook: the [`Transport`] the fan-out uses, and its `wasi:http` implementation.

use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};

use crate::subscription::{Scheme, WebhookUrl};

/// Most time to open a connection to a subscriber.
const CONNECT_TIMEOUT_NS: u64 = 2_000_000_000;
/// Most time from the request to the first byte of the answer (receivers should answer
/// before doing their work; Standard Webhooks asks them to).
const FIRST_BYTE_TIMEOUT_NS: u64 = 4_000_000_000;
/// `wasi:io` streams take at most this many bytes per blocking write.
const WRITE_CHUNK: usize = 4096;

/// Something that can POST a webhook and report the answer's status.
pub trait Transport {
    /// POSTs `body` with `headers` to `url`; the status of the answer.
    ///
    /// # Errors
    /// A description when no answer came (refused, timed out, denied by the host).
    fn post(
        &self,
        url: &WebhookUrl,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, String>;
}

/// Outbound HTTP through the host (`wasi:http/outgoing-handler`), with connect and
/// first-byte timeouts so a stalled subscriber cannot use up the handler's deadline. Blocks
/// until the answer's status arrives; the answer's body is not read.
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn post(
        &self,
        url: &WebhookUrl,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, String> {
        // A known length, so the body goes out in one piece rather than chunked.
        let fields: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(name, value)| ((*name).to_string(), value.clone().into_bytes()))
            .chain([(
                "content-length".to_string(),
                body.len().to_string().into_bytes(),
            )])
            .collect();
        let fields =
            types::Fields::from_list(&fields).map_err(|e| format!("invalid header: {e:?}"))?;
        let request = types::OutgoingRequest::new(fields);
        let scheme = match url.scheme() {
            Scheme::Http => types::Scheme::Http,
            Scheme::Https => types::Scheme::Https,
        };
        let refused = |what: &str| format!("the host refused the request's {what}");
        request
            .set_method(&types::Method::Post)
            .map_err(|()| refused("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| refused("scheme"))?;
        request
            .set_authority(Some(url.authority()))
            .map_err(|()| refused("authority"))?;
        request
            .set_path_with_query(Some(url.path_and_query()))
            .map_err(|()| refused("path"))?;
        let outgoing_body = request.body().map_err(|()| refused("body"))?;
        let options = types::RequestOptions::new();
        // A host that does not support a timeout keeps its own default: not worth failing for.
        let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
        let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_NS));
        let _ = options.set_between_bytes_timeout(Some(FIRST_BYTE_TIMEOUT_NS));

        let response = outgoing_handler::handle(request, Some(options)).map_err(describe)?;
        {
            let stream = outgoing_body.write().map_err(|()| refused("body stream"))?;
            for chunk in body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| format!("sending the body failed: {e:?}"))?;
            }
        }
        types::OutgoingBody::finish(outgoing_body, None).map_err(describe)?;
        response.subscribe().block();
        match response.get() {
            Some(Ok(Ok(answer))) => Ok(answer.status()),
            Some(Ok(Err(code))) => Err(describe(code)),
            Some(Err(())) | None => Err("no response from the host".into()),
        }
    }
}

/// A readable reason for a `wasi:http` error.
fn describe(code: types::ErrorCode) -> String {
    match code {
        types::ErrorCode::HttpRequestDenied => {
            "denied: the destination is not in allowed_outbound_hosts".into()
        }
        types::ErrorCode::ConnectionRefused => "connection refused".into(),
        types::ErrorCode::ConnectionTimeout => "connection timed out".into(),
        types::ErrorCode::ConnectionReadTimeout => "no answer in time".into(),
        types::ErrorCode::DnsError(e) => format!("DNS lookup failed: {e:?}"),
        other => format!("request failed: {other:?}"),
    }
}

"""`requests_errors`: one mapping of `requests` failures for the planner's and the renderers' clients."""

from __future__ import annotations

import pytest
import requests

from storyboard.errors import (
    ProviderRequestError,
    ProviderUnavailable,
    RendererRequestError,
    RendererUnavailable,
    ServiceRefused,
    ServiceUnavailable,
)
from storyboard.http import PLANNER_ERRORS, RENDERER_ERRORS, requests_errors

WHERE = "DashScope at http://127.0.0.1:9/api/v1"
REFUSED = ConnectionRefusedError(111, "Connection refused")


def raised(exc: BaseException, **options) -> BaseException:
    with pytest.raises(BaseException) as caught, requests_errors(WHERE, options.pop("errors"), **options):
        raise exc
    return caught.value


@pytest.mark.parametrize("exc, cls, message", [
    (requests.ConnectionError(REFUSED), RendererUnavailable, f"connection to {WHERE} failed (connection refused)"),
    (requests.exceptions.ChunkedEncodingError("gone"), RendererUnavailable,
     f"the reply from {WHERE} broke off before its end"),
    (requests.exceptions.InvalidJSONError("x"), RendererRequestError,
     f"{WHERE} sent a reply that is not a DashScope response (InvalidJSONError); is the base URL right?"),
    (KeyError("output"), RendererRequestError,
     f"{WHERE} sent a reply that is not a DashScope response (KeyError); is the base URL right?"),
])
def test_an_sdk_call_maps_connection_failures_to_retries_and_unreadable_replies_to_refusals(exc, cls, message):
    error = raised(exc, errors=RENDERER_ERRORS, sdk="DashScope")
    assert type(error) is cls and str(error) == message


def test_the_planner_gets_planner_errors_and_its_own_name_for_a_broken_reply():
    broken = raised(requests.exceptions.ChunkedEncodingError("gone"), errors=PLANNER_ERRORS, sdk="DashScope",
                    broke_off="DashScope's reply")
    assert type(broken) is ProviderUnavailable and str(broken) == "DashScope's reply broke off before its end"
    unreadable = raised(ValueError("not json"), errors=PLANNER_ERRORS, sdk="DashScope")
    assert type(unreadable) is ProviderRequestError and isinstance(unreadable, ServiceRefused)


def test_a_plain_request_retries_every_requests_failure_and_leaves_other_errors_alone():
    dropped = raised(requests.exceptions.ChunkedEncodingError("Connection broken"), errors=RENDERER_ERRORS)
    assert type(dropped) is RendererUnavailable and str(dropped) == f"{WHERE}: Connection broken"
    assert isinstance(dropped, ServiceUnavailable)
    bug = ValueError("a bug, not the server")
    assert raised(bug, errors=RENDERER_ERRORS) is bug


@pytest.mark.parametrize("options", [{"errors": RENDERER_ERRORS}, {"errors": PLANNER_ERRORS, "sdk": "DashScope"}])
def test_a_timeout_is_left_to_the_caller_which_knows_how_long_it_gave(options):
    timeout = requests.ConnectTimeout("slow")  # also a ConnectionError: the timeout wins
    assert raised(timeout, **options) is timeout

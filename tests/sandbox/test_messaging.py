"""The sandbox's messaging side: trigger sends with Braze's validation, recorded and
inspectable; campaign/canvas lists; subscription states; alias and external id renames;
segment details."""

from __future__ import annotations

import pytest

from headwater.braze.errors import MSG_TOO_MANY_IDS

CAMPAIGN = "camp-1"
CANVAS = "canvas-1"


@pytest.fixture
def declared(sandbox, api):
    import httpx

    httpx.post(f"{sandbox.url}/_sandbox/campaigns", json=[
        {"id": CAMPAIGN, "name": "Welcome", "tags": ["crm"]},
        {"id": "not-api", "name": "Newsletter", "api": False},
        {"id": "old", "name": "Old", "status": "archived"},
    ]).raise_for_status()  # fmt: skip
    httpx.post(f"{sandbox.url}/_sandbox/canvases", json=[
        {"id": CANVAS, "name": "Onboarding"}, {"id": "paused", "name": "P", "status": "paused"},
    ]).raise_for_status()  # fmt: skip
    sandbox.seed(attributes=[{"external_id": "u1", "first_name": "Ann"},
                             {"external_id": "u2", "email": "b@example.com"}])  # fmt: skip
    return sandbox


def sends(sandbox) -> list[dict]:
    import httpx

    return httpx.get(f"{sandbox.url}/_sandbox/sends").json()["sends"]


def test_campaign_send_is_recorded_with_each_recipients_merged_properties(declared, api):
    body = {
        "campaign_id": CAMPAIGN,
        "trigger_properties": {"promo": "SPRING", "item": "none"},
        "recipients": [
            {"external_user_id": "u1", "trigger_properties": {"item": "Boots"}},
            {"external_user_id": "ghost"},
        ],
    }
    answer = api.post("/campaigns/trigger/send", json=body)
    assert answer.status_code == 201
    dispatch_id = answer.json()["dispatch_id"]
    assert answer.json()["message"] == "success"
    (recorded,) = sends(declared)
    assert recorded["dispatch_id"] == dispatch_id and recorded["campaign_id"] == CAMPAIGN
    first, ghost = recorded["recipients"]
    assert first["properties"] == {"promo": "SPRING", "item": "Boots"} and first["sent"]
    assert not ghost["sent"]  # send_to_existing_only (the default): no such user, no message
    import httpx

    one = httpx.get(f"{declared.url}/_sandbox/sends/{dispatch_id}").json()
    assert one == recorded


def test_send_to_new_users_creates_them_from_attributes(declared, api):
    body = {"campaign_id": CAMPAIGN, "recipients": [{
        "external_user_id": "new-1", "send_to_existing_only": False,
        "attributes": {"first_name": "Bo"}}]}  # fmt: skip
    assert api.post("/campaigns/trigger/send", json=body).status_code == 201
    assert declared.user("new-1")["first_name"] == "Bo"
    assert sends(declared)[0]["recipients"][0]["sent"]


def test_canvas_send_accepts_both_property_names_and_carries_the_paused_notice(declared, api):
    body = {"canvas_id": CANVAS, "canvas_entry_properties": {"a": 1},
            "recipients": [{"external_user_id": "u1", "context": {"b": 2}}]}  # fmt: skip
    answer = api.post("/canvas/trigger/send", json=body)
    assert answer.status_code == 201 and "notice" not in answer.json()
    assert sends(declared)[0]["recipients"][0]["properties"] == {"a": 1, "b": 2}
    paused = api.post("/canvas/trigger/send", json={**body, "canvas_id": "paused"})
    assert paused.json()["notice"].startswith("The Canvas is paused")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"campaign_id": "nope", "recipients": [{"external_user_id": "u1"}]}, "Invalid Campaign ID"),
        ({"campaign_id": "not-api", "recipients": [{"external_user_id": "u1"}]}, "Invalid Campaign ID"),
        ({"recipients": [{"external_user_id": "u1"}]}, "Invalid Campaign ID"),
        ({"campaign_id": {"$gt": ""}, "recipients": []}, "Invalid Campaign ID"),
        ({"campaign_id": CAMPAIGN}, "No Recipients"),
        ({"campaign_id": CAMPAIGN, "recipients": []}, "No Recipients"),
        ({"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": f"u{i}"} for i in range(51)]},
         MSG_TOO_MANY_IDS),
        ({"campaign_id": CAMPAIGN, "broadcast": True, "recipients": [{"external_user_id": "u1"}]},
         "'recipients' cannot be given when 'broadcast' is true"),
        ({"campaign_id": CAMPAIGN, "recipients": "u1"}, "'recipients' must be an array of objects"),
        ({"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1", "email": "a@b.c"}]},
         "recipients[0]: each recipient needs exactly one of"),
        ({"campaign_id": CAMPAIGN, "recipients": [{}]}, "recipients[0]: each recipient needs"),
        ({"campaign_id": CAMPAIGN, "recipients": [
            {"user_alias": {"alias_name": "a", "alias_label": "l"}, "send_to_existing_only": False,
             "attributes": {"x": 1}}]},
         "recipients[0]: 'send_to_existing_only' false is not supported for user aliases"),
        ({"campaign_id": CAMPAIGN, "recipients": [
            {"external_user_id": "u1", "send_to_existing_only": False}]},
         "recipients[0]: 'attributes' are required when 'send_to_existing_only' is false"),
        ({"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1",
                                                   "send_to_existing_only": "no"}]},
         "recipients[0]: 'send_to_existing_only' must be a boolean"),
        ({"campaign_id": CAMPAIGN, "recipients": [{"user_alias": "a"}]}, "recipients[0]: 'user_alias'"),
        ({"campaign_id": CAMPAIGN, "trigger_properties": [1], "recipients": [{"external_user_id": "u1"}]},
         "'trigger_properties' must be an object"),
        ({"campaign_id": CAMPAIGN, "trigger_properties": {"big": "x" * 51_300},
          "recipients": [{"external_user_id": "u1"}]}, "'trigger_properties' is 51,"),
        ({"campaign_id": CAMPAIGN, "recipients": [
            {"external_user_id": "u1", "trigger_properties": {"big": "x" * 51_300}}]},
         "recipients[0]: 'trigger_properties' is 51,"),
        ({"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "x" * 1000}]},
         "recipients[0]: EXTERNAL_USER_ID_TOO_LARGE"),
    ],
)  # fmt: skip
def test_campaign_send_refuses_what_braze_refuses(declared, api, body, message):
    answer = api.post("/campaigns/trigger/send", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(message)
    assert sends(declared) == []  # nothing refused is recorded


def test_canvas_send_refuses_attachments_and_unknown_canvases(declared, api):
    one = [{"external_user_id": "u1"}]
    answer = api.post("/canvas/trigger/send", json={"canvas_id": "zzz", "recipients": one})
    assert (answer.status_code, answer.json()["message"]) == (400, "Invalid Canvas ID")
    answer = api.post(
        "/canvas/trigger/send", json={"canvas_id": CANVAS, "recipients": one, "attachments": []}
    )
    assert answer.json()["message"] == "'attachments' are not supported for Canvas"


def test_trigger_sends_spend_the_messaging_budget(declared, api):
    declared.set_rate_limit("messaging", 2, 3600)
    body = {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1"}]}
    try:
        codes = [api.post("/campaigns/trigger/send", json=body).status_code for _ in range(3)]
    finally:
        declared.set_rate_limit("messaging", 250, 60)
    assert codes == [201, 201, 429]
    assert len(sends(declared)) == 2


def test_campaign_and_canvas_lists_page_and_leave_archived_out(declared, api):
    listed = api.get("/campaigns/list").json()
    assert [c["id"] for c in listed["campaigns"]] == [CAMPAIGN, "not-api"]
    assert listed["campaigns"][0] == {
        "id": CAMPAIGN, "last_edited": listed["campaigns"][0]["last_edited"], "name": "Welcome",
        "is_api_campaign": True, "tags": ["crm"]}  # fmt: skip
    everything = api.get("/campaigns/list", params={"include_archived": "true"}).json()
    assert len(everything["campaigns"]) == 3
    assert api.get("/campaigns/list", params={"page": "1"}).json()["campaigns"] == []
    assert api.get("/campaigns/list", params={"page": "-1"}).status_code == 400
    assert api.get("/canvas/list", params={"sort_direction": "up"}).status_code == 400
    canvases = api.get("/canvas/list", params={"sort_direction": "desc"}).json()["canvases"]
    assert [c["id"] for c in canvases] == ["paused", CANVAS]
    assert "is_api_campaign" not in canvases[0]


def test_campaigns_declared_in_settings_are_there_after_a_reset():
    from headwater.sandbox.testing import run_sandbox

    with run_sandbox(campaigns=[{"id": "c-set", "name": "From settings"}]) as sandbox:
        sandbox.reset()
        import httpx

        headers = {"Authorization": f"Bearer {sandbox.key}"}
        answer = httpx.post(f"{sandbox.url}/campaigns/trigger/send", headers=headers,
                            json={"campaign_id": "c-set", "recipients": [{"external_user_id": "a"}]})  # fmt: skip
        assert answer.status_code == 201


def test_control_api_refuses_a_malformed_declaration(sandbox):
    import httpx

    for bad in ({"id": "x"}, {"name": "n", "status": "gone"}, {"name": "n", "colour": 1}, "x"):
        answer = httpx.post(f"{sandbox.url}/_sandbox/campaigns", json=bad)
        assert answer.status_code == 400, bad


def test_subscription_status_set(declared, api):
    body = {"subscription_group_id": "sg", "subscription_state": "unsubscribed",
            "external_id": ["u1"], "email": "b@example.com"}  # fmt: skip
    assert api.post("/subscription/status/set", json=body).status_code == 201
    assert declared.user("u1")["subscription_groups"] == {"sg": "unsubscribed"}
    assert declared.user("u2")["subscription_groups"] == {"sg": "unsubscribed"}
    both = {**body, "phone": ["+14155550100"]}
    answer = api.post("/subscription/status/set", json=both)
    assert answer.json()["message"] == (
        "Either an email address or a phone number should be provided, but not both."
    )
    for bad in ({**body, "subscription_state": "maybe"}, {**body, "subscription_group_id": 1},
                {"subscription_group_id": "sg", "subscription_state": "subscribed"},
                {**body, "external_id": [f"u{i}" for i in range(51)]}):  # fmt: skip
        assert api.post("/subscription/status/set", json=bad).status_code == 400, bad


def test_alias_update_renames_within_the_label_and_ignores_no_match(declared, api):
    api.post("/users/alias/new", json={"user_aliases": [
        {"external_id": "u1", "alias_name": "a-1", "alias_label": "crm"}]})  # fmt: skip
    body = {"alias_updates": [
        {"alias_label": "crm", "old_alias_name": "a-1", "new_alias_name": "a-2"},
        {"alias_label": "crm", "old_alias_name": "nobody", "new_alias_name": "a-3"},
        {"alias_label": "crm", "old_alias_name": 5}]}  # fmt: skip
    answer = api.post("/users/alias/update", json=body)
    assert answer.status_code == 201
    assert answer.json()["errors"] == [{"type": answer.json()["errors"][0]["type"], "index": 2}]
    assert declared.user("u1")["user_aliases"] == [{"alias_name": "a-2", "alias_label": "crm"}]
    assert api.post("/users/alias/update", json={"alias_updates": {}}).status_code == 400


def test_external_id_rename_keeps_the_old_id_as_deprecated(declared, api):
    body = {"external_id_renames": [
        {"current_external_id": "u1", "new_external_id": "n1"},
        {"current_external_id": "u2", "new_external_id": "n1"},
        {"current_external_id": "ghost", "new_external_id": "n9"},
        {"current_external_id": "u2", "new_external_id": "u2"},
        {"current_external_id": {"$ne": 1}, "new_external_id": "n8"}]}  # fmt: skip
    answer = api.post("/users/external_ids/rename", json=body).json()
    assert answer["external_ids"] == ["u1"]
    assert [e[0] for e in answer["rename_errors"]] == ["u2", "ghost", "u2", "<invalid>"]
    profile = declared.user("n1")
    assert profile["external_id"] == "n1" and profile["deprecated_external_ids"] == ["u1"]
    assert declared.user("u1")["braze_id"] == profile["braze_id"]  # the old id still resolves
    many = {"external_id_renames": [{"current_external_id": "a", "new_external_id": "b"}] * 51}
    assert api.post("/users/external_ids/rename", json=many).status_code == 400


def test_segment_details(sandbox, api):
    sandbox.seed(segments=[{"id": "seg-1", "name": "VIPs", "tags": ["crm"]}])
    details = api.get("/segments/details", params={"segment_id": "seg-1"}).json()
    assert details["name"] == "VIPs" and details["tags"] == ["crm"]
    assert details["message"] == "success"
    assert api.get("/segments/details", params={"segment_id": "nope"}).status_code == 400
    assert api.get("/segments/details").status_code == 400


def test_hostile_bodies_get_braze_shaped_answers_never_a_500(declared, api):
    deep: dict = {}
    inner = deep
    for _ in range(300):
        inner["a"] = {}
        inner = inner["a"]
    one = [{"external_user_id": "u1"}]
    bodies = [
        {"campaign_id": CAMPAIGN, "trigger_properties": deep, "recipients": one},
        {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1", "trigger_properties": deep}]},
        {"campaign_id": [CAMPAIGN], "recipients": one},
        {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": {"$ne": None}}]},
        {"campaign_id": CAMPAIGN, "recipients": [{"braze_id": 10**40}]},
        {"campaign_id": CAMPAIGN, "recipients": [None, 1, "x"]},
        {"campaign_id": CAMPAIGN, "recipients": one, "send_id": {"a": 1}},
        {"campaign_id": CAMPAIGN, "recipients": one, "broadcast": "yes"},
        {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1", "attributes": [1]}]},
        {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1",
                                                  "send_to_existing_only": False,
                                                  "attributes": {"email": {"x": 1}}}]},
        {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1",
                                                  "send_to_existing_only": False,
                                                  "attributes": {"deep": deep}}]},
    ]  # fmt: skip
    for body in bodies:
        answer = api.post("/campaigns/trigger/send", json=body)
        assert answer.status_code in (201, 400), (body, answer.text)
        assert "message" in answer.json()
    flood = {f"k{i}": i for i in range(10_000)}
    answer = api.post("/campaigns/trigger/send", json={"campaign_id": CAMPAIGN, "recipients": one,
                                                      "trigger_properties": flood})  # fmt: skip
    assert answer.status_code == 400 and "50 KB" in answer.json()["message"]


def test_each_messaging_endpoint_needs_its_own_permission(declared):
    import httpx

    declared.sandbox.keys.add_static("tracker", "tracker-only-key", ["users.track"])
    headers = {"Authorization": "Bearer tracker-only-key"}
    one = {"campaign_id": CAMPAIGN, "recipients": [{"external_user_id": "u1"}]}
    for method, path, body in [
        ("POST", "/campaigns/trigger/send", one),
        ("POST", "/canvas/trigger/send", {"canvas_id": CANVAS, "recipients": one["recipients"]}),
        ("GET", "/campaigns/list", None),
        ("GET", "/canvas/list", None),
        ("GET", "/segments/details", None),
        ("POST", "/subscription/status/set", {}),
        ("POST", "/users/alias/update", {}),
        ("POST", "/users/external_ids/rename", {}),
    ]:
        answer = httpx.request(method, declared.url + path, json=body, headers=headers)
        assert (answer.status_code, answer.json()) == (403, {"message": "Access Denied"}), path
    assert sends(declared) == []

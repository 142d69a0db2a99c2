async def test_a_ten_thousand_character_search_is_answered_as_a_json_400(http, firm):
    async with http.get("/v1/leads/sendable", params={"q": "a" * 10_000}, headers=firm.headers) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json", await resp.text()
        body = await resp.json()
        assert body["code"] and body["error"]

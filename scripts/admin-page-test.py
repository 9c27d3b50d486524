#!/usr/bin/env python3
"""The admin web page in a real headless Chromium, against a running gateway.

Usage:
  admin-page-test.py BASE_URL [ADMIN_KEY] [--screenshots DIR] [--timeout S]

  BASE_URL   the gateway, e.g. http://127.0.0.1:18480 (loopback only: the test creates,
             revokes and deletes keys)
  ADMIN_KEY  an admin key (the bootstrap key `doorman serve` prints on first start); `-` reads
             it from stdin; left out, from $DOORMAN_ADMIN_KEY (keeps it out of `ps`)
  --screenshots DIR   PNGs of the main screens (default docs/screenshots/)

Starts nothing but the browser (Selenium + Debian chromium/chromedriver, from the venv that
../shared/tools/browser/setup.sh builds). Use a fresh gateway: the screenshots show its data.

What it checks
  HTTP: /admin redirects to /admin/; the page and its assets carry the CSP, nosniff,
        no-referrer, no-store (HTML) and ETag (304 on If-None-Match); unknown asset 404; POST 405.
  Page: a wrong key shows the message; the right key signs in (kept in sessionStorage, never
        in the URL or a cookie); groups and users are created, edited, disabled and enabled; a key
        is created in the dialog and its secret shown once (copy button, warning; gone after
        closing); the table filters; dialogs take and return focus; the explain box answers;
        rotate shows a new secret once; from a second tab of the page (same origin, same CSP) three
        WebSockets open with subprotocols doorman.v1 + doorman.key.<secret> (one with the old
        secret inside the rotation's grace); the page lists them; Kick ends one (notice, 4107);
        Revoke ends the rest (notice key_revoked, close 4001); the audit log filters; Delete
        removes the key; sign-out forgets the key; no CSP violation in the console; the tablet
        layout does not scroll sideways.
  Rate limits: a group and a key get limits in their dialogs; the group table, the key's page
        and the API (GET) show them; the edit dialog shows them again; a negative value gets the
        API's 400 on its input (limits.callsPerSecond); clearing every field removes them.
Prints `admin-page: N passed, M failed` last; exits 1 on any failure.
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--password-store=basic",
    "--use-mock-keychain", "--force-device-scale-factor=1", "--lang=en-US",
]
CSP_DIRECTIVES = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                  "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'"]

results = []


def check(name, ok, detail=None):
    results.append((name, bool(ok)))
    line = f"  [{'PASS' if ok else 'FAIL'}] {name}"
    if detail is not None and not ok:
        line += f": {detail}"
    print(line, flush=True)
    return ok


# ---------------------------------------------------------------- HTTP

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http(base, method, path, headers=None, body=None):
    """(status, headers, body bytes), without following redirects."""
    opener = urllib.request.build_opener(NoRedirect)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, method=method, data=data, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(base, key, method, path, body=None):
    status, _, data = http(base, method, path, {"X-API-Key": key}, body)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {data[:200]!r}")
    return json.loads(data) if data else None


def http_checks(base):
    status, headers, _ = http(base, "GET", "/admin")
    check("GET /admin redirects to /admin/", status in (301, 302, 307, 308) and headers.get("Location") == "/admin/",
          f"{status} {headers.get('Location')}")
    status, headers, body = http(base, "GET", "/admin/")
    check("GET /admin/ serves the page", status == 200 and b"<!doctype html>" in body[:50].lower()
          and headers.get("Content-Type", "").startswith("text/html"), status)
    csp = headers.get("Content-Security-Policy", "")
    check("the page has a strict CSP", all(d in csp for d in CSP_DIRECTIVES) and "unsafe" not in csp, csp)
    check("X-Content-Type-Options: nosniff", headers.get("X-Content-Type-Options") == "nosniff")
    check("Referrer-Policy: no-referrer", headers.get("Referrer-Policy") == "no-referrer")
    check("the HTML is Cache-Control: no-store", headers.get("Cache-Control") == "no-store", headers.get("Cache-Control"))
    check("no inline script or style in the HTML",
          not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", body, re.I))
    status, headers, body = http(base, "GET", "/admin/app.js")
    etag = headers.get("ETag", "")
    check("app.js is JavaScript with a strong ETag and the CSP",
          status == 200 and headers.get("Content-Type", "").startswith("text/javascript") and re.match(r'^"[^"]+"$', etag)
          and "Content-Security-Policy" in headers, (status, headers.get("Content-Type"), etag))
    status, _, _ = http(base, "GET", "/admin/app.js", {"If-None-Match": etag})
    check("If-None-Match with the ETag gives 304", status == 304, status)
    status, headers, _ = http(base, "GET", "/admin/no-such-file.js")
    check("an unknown asset is 404 (with the CSP)", status == 404 and "Content-Security-Policy" in headers, status)
    status, headers, _ = http(base, "POST", "/admin/")
    check("POST /admin/ is 405 with Allow", status == 405 and "GET" in headers.get("Allow", ""), status)


# ---------------------------------------------------------------- browser

def start_browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            opts.binary_location = shutil.which(name)
            break
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument("--window-size=1280,900")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    driver.set_window_size(1280, 900)
    return driver


class Page:
    """Small waits and actions over Selenium."""

    def __init__(self, driver, timeout):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.d = driver
        self.By = By
        self.timeout = timeout
        self.Wait = WebDriverWait

    def wait(self, fn, what, timeout=None):
        from selenium.common.exceptions import StaleElementReferenceException, NoSuchElementException

        def probe(_):
            # The page redraws tables after each change: an element found a moment ago may be gone.
            try:
                return fn()
            except (StaleElementReferenceException, NoSuchElementException):
                return None
        try:
            return self.Wait(self.d, timeout or self.timeout, poll_frequency=0.05).until(probe)
        except Exception as e:
            raise AssertionError(f"timed out waiting for {what}") from e

    def find(self, css):
        return self.d.find_element(self.By.CSS_SELECTOR, css)

    def all(self, css):
        return self.d.find_elements(self.By.CSS_SELECTOR, css)

    def visible(self, css, timeout=None):
        def probe():
            for el in self.all(css):
                if el.is_displayed():
                    return el
            return None
        return self.wait(probe, f"{css} to be visible", timeout)

    def gone(self, css):
        self.wait(lambda: not any(el.is_displayed() for el in self.all(css)), f"{css} to go away")

    def click(self, css):
        """Clicks the first visible, enabled match; finds it again if a redraw replaced it."""
        def probe():
            for el in self.all(css):
                if el.is_displayed() and el.is_enabled():
                    el.click()
                    return el
            return None
        return self.wait(probe, f"{css} to click")

    def fill(self, el_or_css, text):
        el = self.visible(el_or_css) if isinstance(el_or_css, str) else el_or_css
        el.clear()
        el.send_keys(text)
        return el

    def field(self, dialog, label):
        """The control a <label> in `dialog` names."""
        for lab in dialog.find_elements(self.By.CSS_SELECTOR, "label[for]"):
            if lab.text.strip() == label:
                return self.d.find_element(self.By.ID, lab.get_attribute("for"))
        raise AssertionError(f"no field labelled {label!r}")

    def select(self, el, visible_text):
        from selenium.webdriver.support.ui import Select
        Select(el).select_by_visible_text(visible_text)

    def set_value(self, el, value):
        """For inputs send_keys handles badly (datetime-local): set and fire input/change."""
        self.d.execute_script("arguments[0].value = arguments[1];"
                              "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
                              "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", el, value)

    def dialog(self):
        return self.visible("dialog[open]")

    def button(self, scope, text):
        for b in scope.find_elements(self.By.CSS_SELECTOR, "button"):
            if b.text.strip() == text and b.is_displayed():
                return b
        raise AssertionError(f"no button {text!r}")

    def confirm(self, text):
        dlg = self.dialog()
        self.button(dlg, text).click()
        self.wait(lambda: not self.all("dialog[open]"), "the dialog to close")

    def toast(self):
        # textContent: Selenium's .text is empty once the toast has faded out.
        return self.find("#status").get_attribute("textContent")

    def shot(self, folder, name, full=False):
        """A PNG of the window; `full`: the whole page (the window grows to fit, then shrinks back)."""
        path = os.path.join(folder, name)
        # The status toast of an earlier step is not part of the screen being shown.
        self.d.execute_script("document.getElementById('status').className = 'toast'")
        time.sleep(0.3)   # its fade-out
        size = self.d.get_window_size()
        if full:
            height = self.d.execute_script("return document.documentElement.scrollHeight")
            chrome = size["height"] - self.d.execute_script("return window.innerHeight")
            self.d.set_window_size(size["width"], min(height + chrome, 3000))
            time.sleep(0.2)
        self.d.save_screenshot(path)
        if full:
            self.d.set_window_size(size["width"], size["height"])
        return path

    def go(self, base, hash_):
        self.d.execute_script("location.hash = arguments[0]", hash_)

    def row(self, table_css, text):
        def probe():
            for tr in self.all(f"{table_css} tbody tr"):
                if text in tr.text:
                    return tr
            return None
        return self.wait(probe, f"a row with {text!r} in {table_css}")


WS_SCRIPT = """
const [url, protocols, name] = arguments;
window.__ws = window.__ws || {};
const rec = window.__ws[name] = {messages: [], open: false, close: null, error: false, protocol: null};
try {
  const ws = new WebSocket(url, protocols);
  rec.socket = ws;
  ws.onopen = () => { rec.open = true; rec.protocol = ws.protocol; };
  ws.onmessage = (e) => { try { rec.messages.push(JSON.parse(e.data)); } catch (x) { rec.messages.push(e.data); } };
  ws.onerror = () => { rec.error = true; };
  ws.onclose = (e) => { rec.close = {code: e.code, reason: e.reason, wasClean: e.wasClean}; };
} catch (e) { rec.thrown = String(e); }
"""
WS_STATE = "const r = (window.__ws || {})[arguments[0]]; return r ? {messages: r.messages, open: r.open, close: r.close, error: r.error, protocol: r.protocol, thrown: r.thrown || null} : null;"


def scenario(p, base, admin_key, shots):
    d = p.d
    By = p.By
    ws_url = re.sub(r"^http", "ws", base) + "/ws"

    # Data for a realistic table (through the API, as an integrator would).
    room_user = api(base, admin_key, "POST", "/v1/users", {"name": "Room devices", "permissions": ["door:*", "channel:subscribe.*"], "properties": ["hotel-1"]})
    for name, extra in [("Room 101 door panel", {"rules": ["door:open", "channel:subscribe.room-101"]}),
                        ("Room 102 door panel", {"rules": ["door:open", "channel:subscribe.room-102"]}),
                        ("Lobby dashboard", {"scopes": ["channel:subscribe.*"]})]:
        api(base, admin_key, "POST", "/v1/keys", {"name": name, "userID": room_user["id"], "properties": ["hotel-1"], **extra})
    spare = api(base, admin_key, "POST", "/v1/keys", {"name": "Old night-desk tablet", "userID": room_user["id"], "description": "replaced in March"})
    api(base, admin_key, "POST", f"/v1/keys/{spare['key']['id']}/suspend")

    # ---- sign-in
    d.get(base + "/admin")
    check("the browser lands on /admin/", d.current_url.rstrip("/").endswith("/admin") or d.current_url.endswith("/admin/"), d.current_url)
    key_input = p.visible("#signin-key")
    check("the sign-in form has a labelled key field", p.find("label[for=signin-key]").text.strip() == "Admin key")
    check("the key field has the focus", d.switch_to.active_element == key_input)
    p.shot(shots, "01-sign-in.png")
    p.fill(key_input, "dmk_not-a-real-key")
    p.click("#signin-submit")
    err = p.visible("#signin-error")
    check("a wrong key shows a clear message", "not a Doorman key" in err.text, err.text)
    check("a wrong key is not kept", d.execute_script("return sessionStorage.length") == 0)
    check("the field is marked invalid", p.find("#signin-key").get_attribute("aria-invalid") == "true")
    wellformed = api(base, admin_key, "POST", "/v1/keys", {"name": "deleted at once", "userID": room_user["id"]})
    api(base, admin_key, "DELETE", f"/v1/keys/{wellformed['key']['id']}")
    p.fill("#signin-key", wellformed["secret"])
    p.click("#signin-submit")
    p.wait(lambda: "no such key" in p.find("#signin-error").text, "the unknown-key message")
    check("an unknown (deleted) key shows 'no such key'", True)

    p.fill("#signin-key", admin_key)
    p.click("#signin-submit")
    p.visible("table.keys")
    p.row("table.keys", "bootstrap admin key")
    check("the right key signs in and shows the keys table", True)
    check("the key is kept in sessionStorage only",
          d.execute_script("return sessionStorage.getItem('doorman.adminKey')") == admin_key
          and d.execute_script("return document.cookie") == "" and d.execute_script("return localStorage.length") == 0)
    check("the key is never in the URL", admin_key not in d.current_url)
    check("who is signed in is shown", "admin" in p.find("#who").text, p.find("#who").text)
    d.execute_script("document.getElementById('skip').focus()")
    d.switch_to.active_element.send_keys("\n")
    check("the skip link moves the focus to the content and keeps the view",
          d.switch_to.active_element.get_attribute("id") == "main" and "#main" not in d.current_url and p.all("table.keys"))

    # ---- groups
    p.click("a[data-nav=groups]")
    p.click("#create-group")
    dlg = p.dialog()
    check("a dialog takes the focus", dlg.find_elements(By.CSS_SELECTOR, ":focus"), None)
    p.fill(p.field(dlg, "Name"), "Kiosk check-in")
    p.fill(p.field(dlg, "Description"), "What a lobby kiosk may call")
    p.fill(p.field(dlg, "Permissions"), "pms:checkIn*\npms:printKeyCard\nchannel:subscribe.*")
    check("the group dialog has a Rate limits fieldset with six labelled inputs and its help line",
          [lab.text.strip() for lab in dlg.find_elements(By.CSS_SELECTOR, "fieldset.limits label[for]")]
          == ["Messages per second", "Message burst", "Calls per second", "Call burst", "Handshakes per second", "Handshake burst"]
          and "0 = no limit" in dlg.find_element(By.CSS_SELECTOR, "fieldset.limits .help").text)
    p.fill(p.field(dlg, "Calls per second"), "5")
    p.fill(p.field(dlg, "Call burst"), "10")
    p.button(dlg, "Create group").click()
    p.row("table.groups", "Kiosk check-in")
    check("a group is created", True)
    tr = p.row("table.groups", "Kiosk check-in")
    cell = tr.find_element(By.CSS_SELECTOR, "td[data-label='Rate limits']").text
    check("the group table shows the group's rate limits", cell == "calls 5/s, burst 10", cell)
    kiosk_group = next(g for g in api(base, admin_key, "GET", "/v1/groups") if g["name"] == "Kiosk check-in")
    check("the API returns the group's limits", kiosk_group.get("limits") == {"callsPerSecond": 5, "callBurst": 10}, kiosk_group.get("limits"))
    tr.find_element(By.XPATH, ".//button[text()='Edit']").click()
    dlg = p.dialog()
    check("the group's edit dialog shows its limits",
          p.field(dlg, "Calls per second").get_attribute("value") == "5" and p.field(dlg, "Call burst").get_attribute("value") == "10"
          and p.field(dlg, "Messages per second").get_attribute("value") == "")
    p.fill(p.field(dlg, "Description"), "Lobby kiosks: check-in and key cards")
    p.button(dlg, "Save").click()
    p.row("table.groups", "Lobby kiosks: check-in and key cards")
    check("a group is edited", True)
    p.click("#create-group")
    dlg = p.dialog()
    p.fill(p.field(dlg, "Name"), "Unused group")
    p.button(dlg, "Create group").click()
    cell = p.row("table.groups", "Unused group").find_element(By.CSS_SELECTOR, "td[data-label='Rate limits']").text
    check("a group without limits shows 'server defaults'", cell == "server defaults", cell)
    p.row("table.groups", "Unused group").find_element(By.XPATH, ".//button[text()='Delete']").click()
    p.confirm("Delete group")
    p.wait(lambda: "Unused group" not in p.find("table.groups").text, "the group to be deleted")
    check("a group is deleted", True)

    # ---- users
    p.click("a[data-nav=users]")
    p.click("#create-user")
    dlg = p.dialog()
    p.fill(p.field(dlg, "Name"), "Front desk")
    p.fill(p.field(dlg, "Permissions"), "pms:*\nchannel:*")
    p.fill(p.field(dlg, "Properties"), "hotel-1\nhotel-2")
    for lab in dlg.find_elements(By.CSS_SELECTOR, "label.check"):
        if "Kiosk check-in" in lab.text:
            lab.find_element(By.TAG_NAME, "input").click()
    # A bad pattern first: the API's 400 names the field.
    p.fill(p.field(dlg, "Permissions"), "pms:*\nnot a pattern")
    p.button(dlg, "Create user").click()
    err = p.visible("dialog[open] .form-error")
    check("a bad permission shows the API's message on the field", "Permissions" in err.text
          and p.field(dlg, "Permissions").get_attribute("aria-invalid") == "true", err.text)
    p.fill(p.field(dlg, "Permissions"), "pms:*\nchannel:*")
    p.button(dlg, "Create user").click()
    tr = p.row("table.users", "Front desk")
    check("a user is created with the group", "Kiosk check-in" in tr.text, tr.text)
    tr.find_element(By.XPATH, ".//button[text()='Disable']").click()
    p.confirm("Disable user")
    p.wait(lambda: "disabled" in p.row("table.users", "Front desk").text.lower(), "the user to show disabled")
    check("a user is disabled", True)
    p.row("table.users", "Front desk").find_element(By.XPATH, ".//button[text()='Enable']").click()
    p.wait(lambda: "active" in p.row("table.users", "Front desk").text.lower(), "the user to show active")
    check("a user is enabled", True)
    p.row("table.users", "Front desk").find_element(By.XPATH, ".//button[text()='Edit']").click()
    dlg = p.dialog()
    p.fill(p.field(dlg, "Name"), "Front desk (lobby)")
    p.button(dlg, "Save").click()
    p.row("table.users", "Front desk (lobby)")
    check("a user is edited", True)
    p.shot(shots, "05-users.png")

    # ---- create a key
    p.click("a[data-nav=keys]")
    opener = p.click("#create-key")
    dlg = p.dialog()
    check("the create dialog has every field of the model",
          all(p.field(dlg, f) for f in ["Name", "Description", "User", "Permission group", "Scopes", "Properties", "Rules", "Expires"]))
    # Escape closes a dialog and gives the focus back to the button that opened it.
    from selenium.webdriver.common.keys import Keys
    d.switch_to.active_element.send_keys(Keys.ESCAPE)
    p.wait(lambda: not p.all("dialog[open]"), "Escape to close the dialog")
    check("Escape closes the dialog and the focus returns to its button", d.switch_to.active_element.get_attribute("id") == "create-key")
    p.click("#create-key")
    dlg = p.dialog()
    p.fill(p.field(dlg, "Name"), "Lobby kiosk 1")
    p.fill(p.field(dlg, "Description"), "Check-in kiosk by the main entrance")
    p.select(p.field(dlg, "User"), "Front desk (lobby)")
    p.select(p.field(dlg, "Permission group"), "Kiosk check-in")
    p.fill(p.field(dlg, "Properties"), "hotel-1")
    p.fill(p.field(dlg, "Rules"), "!pms:checkInVIP\npms:*\nchannel:*")
    expiry = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 90 * 86400))
    p.set_value(p.field(dlg, "Expires"), expiry)
    p.fill(p.field(dlg, "Messages per second"), "20")
    p.fill(p.field(dlg, "Message burst"), "40")
    p.button(dlg, "Create key").click()
    secret_box = p.visible("#new-secret")
    secret1 = secret_box.get_attribute("value")
    check("the new secret is shown", re.match(r"^dmk_[A-Za-z0-9]{20,}$", secret1 or "") is not None, secret1 and secret1[:8])
    warning = p.find("#secret-warning").text
    check("with a warning that it is shown once", "only time" in warning, warning)
    p.click("#copy-secret")
    p.wait(lambda: p.find("#copy-status").text.strip() != "", "the copy status")
    check("the copy button reports", "Cop" in p.find("#copy-status").text or "Selected" in p.find("#copy-status").text, p.find("#copy-status").text)
    p.shot(shots, "03-create-key-secret.png")
    p.click("#secret-done")
    p.visible(".key-view h1")
    key_id = re.search(r"#/keys/([^/?]+)$", d.current_url).group(1)
    check("closing the secret opens the key's page", "Lobby kiosk 1" in p.find(".key-view h1").text)
    check("the secret is gone from the page after closing",
          not p.all("#new-secret") and secret1 not in d.page_source and secret1 not in d.execute_script("return document.documentElement.outerHTML"))
    check("the key page shows only the key's start", secret1[:8] in p.find("dl.details").text and secret1 not in p.find("dl.details").text)
    status, _, body = http(base, "GET", f"/v1/keys/{key_id}", {"X-API-Key": admin_key})
    check("the API never shows the secret again", status == 200 and secret1.encode() not in body)

    def limits_row():
        return p.find("dl.details").find_element(By.XPATH, "./dt[.='Rate limits']/following-sibling::dd[1]").text
    text = limits_row()
    check("the key's page shows its own limits, and where the rest come from",
          text == "messages 20/s, burst 40 · the rest: the group’s (calls 5/s, burst 10)", text)
    check("the API returns the key's limits", json.loads(body).get("limits") == {"messagesPerSecond": 20, "messageBurst": 40},
          json.loads(body).get("limits"))

    # ---- edit, suspend, resume (before any session: suspending would end them)
    p.click("#key-edit")
    dlg = p.dialog()
    check("the edit dialog shows the key's fields", p.field(dlg, "Rules").get_attribute("value") == "!pms:checkInVIP\npms:*\nchannel:*"
          and not p.field(dlg, "User").is_enabled())
    check("the edit dialog shows the key's limits", p.field(dlg, "Messages per second").get_attribute("value") == "20"
          and p.field(dlg, "Message burst").get_attribute("value") == "40" and p.field(dlg, "Calls per second").get_attribute("value") == "")
    p.fill(p.field(dlg, "Description"), "Check-in kiosk by the main entrance (left)")
    calls = p.fill(p.field(dlg, "Calls per second"), "-1")
    p.button(dlg, "Save").click()
    err = p.visible("dialog[open] .form-error")
    check("a negative limit shows the API's error on its input",
          err.text.startswith("Calls per second:") and calls.get_attribute("aria-invalid") == "true"
          and d.switch_to.active_element == calls and p.all("dialog[open]"), err.text)
    calls.clear()
    p.field(dlg, "Messages per second").clear()
    p.field(dlg, "Message burst").clear()
    p.button(dlg, "Save").click()
    p.wait(lambda: "(left)" in p.find("dl.details").text, "the edited description")
    check("a key is edited", True)
    text = limits_row()
    check("clearing every limit field falls back to the group's", text == "the group’s (calls 5/s, burst 10)", text)
    got = api(base, admin_key, "GET", f"/v1/keys/{key_id}")
    check("the API no longer returns limits for the key", got.get("limits") is None, got.get("limits"))
    p.click("#key-suspend")
    p.confirm("Suspend key")
    p.wait(lambda: "suspended" in p.find(".key-view h1").text.lower(), "the key to show suspended")
    check("a key is suspended", p.all("#key-resume"))
    p.click("#key-resume")
    p.wait(lambda: "active" in p.find(".key-view h1").text.lower(), "the key to show active")
    check("a key is resumed", True)

    # ---- the table: filters
    p.go(base, "#/keys")
    p.visible("table.keys")
    p.row("table.keys", "Lobby kiosk 1")
    live_cell = p.row("table.keys", "Lobby kiosk 1")
    check("the table shows name, start, user, group, properties, state, expiry, last used, live sessions",
          all(s in live_cell.text.lower() for s in ["lobby kiosk 1", secret1[:8].lower(), "front desk (lobby)", "kiosk check-in", "hotel-1", "active", "in 90 days", "never"])
          and live_cell.find_element(By.CSS_SELECTOR, "td[data-label='Live sessions']").text == "0", live_cell.text)
    p.fill("#key-search", "door panel")
    p.wait(lambda: len(p.all("table.keys tbody tr")) == 2, "the search to leave two rows")
    check("search filters the table", True)
    p.fill("#key-search", "")
    p.select(p.find("#key-state"), "suspended")
    p.wait(lambda: len(p.all("table.keys tbody tr")) == 1 and "Old night-desk" in p.find("table.keys tbody").text, "the state filter")
    check("the state filter works", True)
    p.select(p.find("#key-state"), "any state")
    p.select(p.find("#key-user"), "Front desk (lobby)")
    p.wait(lambda: len(p.all("table.keys tbody tr")) == 1, "the user filter")
    check("the user filter works", True)
    p.select(p.find("#key-user"), "any user")
    p.wait(lambda: len(p.all("table.keys tbody tr")) >= 6, "all keys again")

    # ---- a second tab of the page opens a WebSocket with the key (same origin, same CSP)
    main_tab = d.current_window_handle
    d.switch_to.new_window("tab")
    ws_tab = d.current_window_handle
    d.get(base + "/admin/")
    p.visible("#signin-key")
    d.execute_script(WS_SCRIPT, ws_url, ["doorman.v1", "doorman.key." + secret1], "old")
    state = p.wait(lambda: (lambda s: s if s and (s["messages"] or s["close"]) else None)(d.execute_script(WS_STATE, "old")), "the first WebSocket")
    check("a WebSocket from the page's origin opens under its CSP (connect-src 'self')", state["open"] and not state["error"], state)
    check("the server selects subprotocol doorman.v1", state["protocol"] == "doorman.v1", state["protocol"])
    welcome = state["messages"][0] if state["messages"] else {}
    check("the server speaks first: welcome", isinstance(welcome, dict) and welcome.get("type") == "welcome", welcome)
    d.switch_to.window(main_tab)

    # ---- explain
    p.go(base, f"#/keys/{key_id}")
    p.visible("#explain-action")

    def explain(action, prop):
        p.fill("#explain-action", action)
        p.fill("#explain-property", prop)
        before = p.find("#explain-result").text
        p.click("#explain-submit")
        p.wait(lambda: p.find("#explain-result").text and p.find("#explain-result").text != before, "the explain answer")
        return p.find("#explain-result").text, p.find("#explain-result").get_attribute("data-reason")
    text, reason = explain("pms:checkInVIP", "hotel-1")
    check("explain: a deny rule denies", text.startswith("Denied") and reason == "denied_by_rule", text)
    text, reason = explain("pms:checkInGuest", "hotel-2")
    check("explain: a property outside the key is denied", text.startswith("Denied") and reason == "property_not_allowed_for_key", text)
    text, reason = explain("pms:checkInGuest", "hotel-1")
    check("explain: allowed, and by what", text.startswith("Allowed") and "pms:*" in text, text)

    # ---- rotate with a grace period
    p.click("#key-rotate")
    dlg = p.dialog()
    p.fill("#rotate-grace", "5")
    p.button(dlg, "Rotate").click()
    secret2 = p.visible("#new-secret").get_attribute("value")
    check("rotate shows a new secret once", secret2 and secret2 != secret1 and secret2.startswith("dmk_"))
    p.click("#secret-done")
    p.gone("dialog[open]")
    # The dialog clears and leaves the page on its close event, a task after the click.
    try:
        p.wait(lambda: not p.all("#new-secret") and secret2 not in d.page_source, "the rotated secret to leave the page")
        gone = True
    except Exception:
        gone = False
    check("the rotated secret is gone after closing", gone)

    d.switch_to.window(ws_tab)
    for name in ("kick-me", "revoke-me"):
        d.execute_script(WS_SCRIPT, ws_url, ["doorman.v1", "doorman.key." + secret2], name)
    states = p.wait(lambda: (lambda a: a if all(s and s["messages"] for s in a) else None)(
        [d.execute_script(WS_STATE, n) for n in ("kick-me", "revoke-me")]), "two WebSockets with the new secret")
    check("the new secret opens sessions", all(s["open"] and s["messages"][0].get("type") == "welcome" for s in states))
    old = d.execute_script(WS_STATE, "old")
    check("the old secret's session lives on in the grace period", old["close"] is None, old["close"])
    kick_id = states[0]["messages"][0].get("session")
    d.switch_to.window(main_tab)

    # ---- live sessions, kick
    p.click("#sessions-refresh")
    p.wait(lambda: len(p.all("table.sessions tbody tr[data-session]")) == 3, "three live sessions on the key's page")
    check("the key's page lists its live sessions", True)
    p.shot(shots, "04-key-details.png", full=True)
    p.click(f"table.sessions tr[data-session='{kick_id}'] button.kick")
    p.confirm("Kick")
    d.switch_to.window(ws_tab)
    kicked = p.wait(lambda: (lambda s: s if s["close"] else None)(d.execute_script(WS_STATE, "kick-me")), "the kicked session to close")
    notice = next((m for m in kicked["messages"] if isinstance(m, dict) and m.get("type") == "notice"), {})
    check("Kick: notice killed_by_administrator, close 4107", notice.get("reason") == "killed_by_administrator" and kicked["close"]["code"] == 4107, (notice, kicked["close"]))
    d.switch_to.window(main_tab)
    p.wait(lambda: len(p.all("table.sessions tbody tr[data-session]")) == 2, "two sessions left")

    # ---- revoke
    p.click("#key-revoke")
    dlg = p.dialog()
    check("revoke asks first, with Cancel focused", "cannot be undone" in dlg.text and d.switch_to.active_element.text == "Cancel")
    p.confirm("Revoke key")
    p.wait(lambda: "revoked" in p.find(".key-view h1").text.lower(), "the key to show revoked")
    check("the page shows the key revoked, with its actions disabled", not p.find("#key-rotate").is_enabled() and not p.find("#key-revoke").is_enabled())
    check("the revoke reports the ended sessions", "2 live session" in p.toast(), p.toast())
    d.switch_to.window(ws_tab)
    for name in ("revoke-me", "old"):
        s = p.wait(lambda: (lambda s: s if s["close"] else None)(d.execute_script(WS_STATE, name)), f"session {name} to close")
        notice = next((m for m in s["messages"] if isinstance(m, dict) and m.get("type") == "notice"), {})
        check(f"revoked ({name} secret): notice key_revoked, then close 4001",
              notice.get("reason") == "key_revoked" and notice.get("code") == 4001 and s["close"]["code"] == 4001, (notice, s["close"]))
    d.close()
    d.switch_to.window(main_tab)
    p.go(base, "#/keys")
    tr = p.row("table.keys", "Lobby kiosk 1")
    check("a revoked key stays listed, marked revoked", "revoked" in tr.text.lower() and "revoked" in (tr.get_attribute("class") or ""))
    p.shot(shots, "02-keys.png", full=True)

    # ---- audit
    p.click("a[data-nav=audit]")
    p.visible("table.audit")
    p.shot(shots, "06-audit.png")
    p.fill("#audit-target", key_id)
    p.click("#audit-apply")
    p.wait(lambda: all(key_id in tr.text or "Lobby kiosk 1" in tr.text for tr in p.all("table.audit tbody tr")) and len(p.all("table.audit tbody tr")) == 6, "the target filter")
    actions = [tr.get_attribute("data-action") for tr in p.all("table.audit tbody tr")]
    check("the audit log filters by target, newest first", actions == ["key.revoke", "key.rotate", "key.resume", "key.suspend", "key.update", "key.create"], actions)
    check("the audit log never shows a secret", secret1 not in d.page_source and secret2 not in d.page_source)
    p.find("#audit-target").clear()
    p.select(p.find("#audit-action"), "user.disable")
    p.wait(lambda: [tr.get_attribute("data-action") for tr in p.all("table.audit tbody tr")] == ["user.disable"], "the action filter")
    check("the audit log filters by action", True)

    # ---- delete
    p.go(base, f"#/keys/{key_id}")
    p.click("#key-delete")
    p.confirm("Delete key")
    p.visible("table.keys")
    p.wait(lambda: "Lobby kiosk 1" not in p.find("table.keys").text, "the key to leave the table")
    check("a deleted key is gone from the table", True)

    # ---- the group's limits cleared in its dialog
    p.click("a[data-nav=groups]")
    p.row("table.groups", "Kiosk check-in").find_element(By.XPATH, ".//button[text()='Edit']").click()
    dlg = p.dialog()
    p.field(dlg, "Calls per second").clear()
    p.field(dlg, "Call burst").clear()
    p.button(dlg, "Save").click()
    p.wait(lambda: not p.all("dialog[open]")
           and p.row("table.groups", "Kiosk check-in").find_element(By.CSS_SELECTOR, "td[data-label='Rate limits']").text == "server defaults",
           "the group's limits to be cleared")
    got = api(base, admin_key, "GET", f"/v1/groups/{kiosk_group['id']}")
    check("clearing a group's limits removes them (API)", got.get("limits") is None, got.get("limits"))

    # ---- tablet layout
    d.set_window_size(820, 1180)
    time.sleep(0.3)
    overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check("tablet width: no sideways scrolling", overflow <= 0, overflow)
    p.shot(shots, "07-keys-tablet.png")
    d.set_window_size(1280, 900)

    # ---- sign out
    p.click("#signout")
    p.visible("#signin-key")
    check("sign-out forgets the key", d.execute_script("return sessionStorage.length") == 0)

    # ---- a help desk sees actions only on keys within its own rights
    desk_user = api(base, admin_key, "POST", "/v1/users", {"name": "Help desk", "permissions": ["admin:keys.*", "admin:users.read", "door:*", "channel:subscribe.*"]})
    desk = api(base, admin_key, "POST", "/v1/keys", {"name": "Help desk key", "userID": desk_user["id"]})
    panel = api(base, admin_key, "POST", "/v1/keys", {"name": "Room 103 door panel", "userID": room_user["id"], "properties": ["hotel-1"], "rules": ["door:open"]})
    me = api(base, admin_key, "GET", "/v1/me")
    p.fill("#signin-key", desk["secret"])
    p.click("#signin-submit")
    p.visible("table.keys")
    p.go(base, f"#/keys/{panel['key']['id']}")
    p.visible("#key-rotate")
    check("a help desk sees the actions of a device key within its rights", True)
    p.go(base, f"#/keys/{me['key']['id']}")
    p.wait(lambda: "bootstrap admin key" in p.find("#view h1").text, "the admin key's page")
    check("…and none on the admin's key, above it", not p.all("#key-rotate") and not p.all("#key-revoke") and not p.all("#key-edit"))
    p.click("#signout")
    p.visible("#signin-key")

    # ---- CSP: nothing was blocked
    logs = d.get_log("browser")
    violations = [e["message"] for e in logs if "Content Security Policy" in e.get("message", "") or "Refused to" in e.get("message", "")]
    check("no Content-Security-Policy violation in the console", not violations, violations[:3])
    errors = [e["message"] for e in logs if e.get("level") == "SEVERE" and "status of 40" not in e["message"]]
    check("no other console errors", not errors, errors[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_url")
    ap.add_argument("admin_key", nargs="?")
    ap.add_argument("--screenshots", default=os.path.join(ROOT, "docs/screenshots"))
    ap.add_argument("--timeout", type=float, default=15)
    a = ap.parse_args()
    base = a.base_url.rstrip("/")
    if not re.match(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$", base):
        sys.exit("admin-page-test: refusing: only http:// loopback targets (the test changes the gateway's data)")
    key = a.admin_key if a.admin_key not in (None, "-") else (sys.stdin.readline().strip() if a.admin_key == "-" else os.environ.get("DOORMAN_ADMIN_KEY", ""))
    if not key:
        sys.exit("admin-page-test: no admin key (argument, - for stdin, or DOORMAN_ADMIN_KEY)")
    os.makedirs(a.screenshots, exist_ok=True)

    print(f"admin-page: {base}/admin/")
    try:
        http_checks(base)
    except Exception as e:
        check("HTTP checks ran", False, repr(e))
    profile = tempfile.mkdtemp(prefix="admin_page_profile_")
    driver = None
    try:
        driver = start_browser(profile)
        print(f"  chromium {driver.capabilities.get('browserVersion')}")
        scenario(Page(driver, a.timeout), base, key, a.screenshots)
    except Exception as e:
        msg = str(e).replace(key, "<admin key>")
        check("the browser scenario ran to the end", False, f"{type(e).__name__}: {msg.splitlines()[0] if msg else ''}")
        if driver is not None:
            try:
                driver.save_screenshot(os.path.join(tempfile.gettempdir(), "admin-page-failure.png"))
                print(f"  (failure screenshot: {os.path.join(tempfile.gettempdir(), 'admin-page-failure.png')})")
                for entry in driver.get_log("browser")[-10:]:
                    print("  console:", entry.get("message", "").replace(key, "<admin key>")[:300])
            except Exception:
                pass
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    passed = sum(1 for _, ok in results if ok)
    failed = sum(1 for _, ok in results if not ok)
    print(f"admin-page: {passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()

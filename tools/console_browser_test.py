#!/usr/bin/env python3
"""The vendor console in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, against a running `omg vendor serve`.

Run by tools/test-console.sh, which makes the vendor, the device and the service, and hands
over the command that makes the device activate through the real protocol (`omg provision`).
In order, each step an assertion:

  1. a wrong admin token is refused (no session cookie); the right one logs in, and the
     session cookie is HttpOnly, SameSite=Strict, Path=/console;
  2. the models, devices, device and audit pages show the model, the device and its
     activation; the audit filter (device and reason) narrows the log to that activation;
  3. forged state changes are refused and change nothing: posts from a plain HTTP client
     with the session cookie but without the CSRF token, with a wrong one, or with the right
     one from another Origin; in the browser, the console's own form with its CSRF token
     removed, and a form on another origin (another port) posting to the console even with
     the right token; the device then still activates;
  4. the device is revoked by clicking through its page and the confirmation page; its page
     says so, and its next activation (the real protocol again) is refused as device_revoked;
     the audit log shows the operator's revocation and the refusal;
  5. logging out ends the session: its cookie no longer opens a page.

Screenshots of the pages go to --screenshots (PNG, the whole page).
"""

import argparse
import base64
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.support.ui import WebDriverWait


def fail(message):
    print(f"console test: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print(f"  ok: {message}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def request(method, url, cookie=None, body=None, headers=None):
    """A plain HTTP request (no redirect followed): (status, headers, text)."""
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if cookie:
        req.add_header("Cookie", cookie)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with OPENER.open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


class Browser:
    def __init__(self, chromium, chromedriver, shots):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,900",
            "--no-first-run",
            "--disable-extensions",
        ):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(
            service=Service(executable_path=chromedriver), options=options
        )
        self.driver.set_page_load_timeout(30)
        self.shots = shots

    def get(self, url):
        self.driver.get(url)

    def click(self, by, what):
        """Clicks the element and waits for the page it leads to."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(by, what).click()

        def left(driver):
            try:
                old.tag_name
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as e:
                # Chromium may say so in its own words while the old document goes.
                if "does not belong to the document" in str(e):
                    return True
                raise

        wait = WebDriverWait(self.driver, 15)
        wait.until(left)
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def shot(self, name):
        if not self.shots:
            return
        png = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path = os.path.join(self.shots, f"{name}.png")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        os.replace(tmp, path)
        print(f"  screenshot: {path}")

    def session_cookie(self):
        return self.driver.get_cookie("omg_console")

    def csrf(self):
        return self.driver.find_element(By.NAME, "csrf").get_attribute("value")

    def quit(self):
        self.driver.quit()


def attacker_site(console, ueid, csrf):
    """A page on another origin (another port of 127.0.0.1) whose form posts to the
    console's revoke action, with the session's real CSRF token: the Origin / Sec-Fetch-Site
    check must refuse it on its own. Returns (url, server)."""
    page = f"""<!DOCTYPE html><html><body><h1>Win a prize</h1>
<form method="post" action="{console}/console/revoke/device">
<input type="hidden" name="ueid" value="{ueid}">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="claim">Claim</button></form></body></html>"""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


def activate(command):
    """Runs the device's activation command: (succeeded, its output)."""
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return out.returncode == 0, out.stdout + out.stderr


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="the service, http://HOST:PORT")
    p.add_argument("--token-file", required=True, help="the admin token")
    p.add_argument("--ueid", required=True, help="the enrolled, activated device")
    p.add_argument("--model", required=True, help="the packaged model's id")
    p.add_argument("--screenshots", help="directory for the pages' screenshots")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    p.add_argument("activate", nargs=argparse.REMAINDER,
                   help="after --: the command that makes the device activate")
    args = p.parse_args()
    command = args.activate[1:] if args.activate[:1] == ["--"] else args.activate
    if not command:
        fail("no activation command given (after --)")
    url, ueid, model = args.url.rstrip("/"), args.ueid, args.model
    token = open(args.token_file).read().strip()
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)

    b = Browser(args.chromium, args.chromedriver, args.screenshots)
    try:
        print("1. login")
        b.get(f"{url}/console/")
        check(b.driver.current_url == f"{url}/console/login", "no session: the login page")
        b.driver.find_element(By.ID, "token").send_keys("not-the-admin-token")
        b.click(By.CSS_SELECTOR, "form.login button")
        check("Wrong admin token" in b.text(), "a wrong token is refused")
        check(b.session_cookie() is None, "a wrong token gets no session cookie")
        b.shot("login-refused")
        b.driver.find_element(By.ID, "token").send_keys(token)
        b.click(By.CSS_SELECTOR, "form.login button")
        check(b.driver.current_url == f"{url}/console/models", "the right token logs in")
        cookie = b.session_cookie()
        check(cookie is not None, "a session cookie is set")
        check(cookie.get("httpOnly") is True, "the cookie is HttpOnly")
        check(cookie.get("sameSite") == "Strict", "the cookie is SameSite=Strict")
        check(cookie.get("path") == "/console", "the cookie's path is /console")
        session = f"omg_console={cookie['value']}"

        print("2. browse and filter")
        check(model in b.text(), f"the models page shows {model}")
        check("1 of at most" in b.text(), "and its device count")
        b.shot("models")
        b.click(By.LINK_TEXT, "Devices")
        check(ueid in b.text(), "the devices page shows the device")
        check("active" in b.text(), "as active")
        b.shot("devices")
        b.click(By.LINK_TEXT, ueid)
        check(model in b.text() and "Activations" in b.text(),
              "the device's page shows its activation")
        b.shot("device")
        b.click(By.LINK_TEXT, "Audit log")
        check("entries" in b.text(), "the audit log opens")
        b.driver.find_element(By.NAME, "device").send_keys(ueid)
        b.driver.find_element(By.NAME, "reason").send_keys("activated")
        b.click(By.CSS_SELECTOR, "form.filters button")
        query = urllib.parse.parse_qs(urllib.parse.urlparse(b.driver.current_url).query)
        check(query.get("device") == [ueid] and query.get("reason") == ["activated"],
              "the filter form sends the filters")
        rows = b.driver.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")
        check(len(rows) >= 1, f"the filtered log has the activation ({len(rows)} rows)")
        for row in rows:
            cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
            if cells[1] != "activated" or cells[3] != ueid or cells[4] != model:
                fail(f"a row outside the filter: {cells}")
        print("  ok: every row matches the filter")
        b.shot("audit-filtered")

        print("3. forged state changes")
        b.get(f"{url}/console/revoke/device?ueid={ueid}")
        csrf = b.csrf()
        check(len(csrf) == 64, "the confirmation page's form carries a CSRF token")
        revoke = f"{url}/console/revoke/device"
        for what, body, headers in [
            ("without the CSRF token", f"ueid={ueid}", {}),
            ("with a wrong CSRF token", f"ueid={ueid}&csrf={'0' * 64}", {}),
            ("from another Origin", f"ueid={ueid}&csrf={csrf}",
             {"Origin": "http://attacker.example"}),
            ("cross-site (Sec-Fetch-Site)", f"ueid={ueid}&csrf={csrf}",
             {"Sec-Fetch-Site": "cross-site"}),
        ]:
            status, _, _ = request("POST", revoke, session, body, headers)
            check(status == 403, f"a post with the session cookie {what}: {status}")
        status, _, _ = request("POST", revoke, None, f"ueid={ueid}&csrf={csrf}")
        check(status == 403, f"a post without the session cookie: {status}")
        # In the browser, on the console's own confirmation page (same origin, the session
        # cookie sent), the form without its CSRF token: the token check alone refuses it.
        b.get(f"{url}/console/revoke/device?ueid={ueid}")
        b.driver.execute_script(
            "document.querySelector('form[action=\"/console/revoke/device\"] "
            "input[name=csrf]').remove()")
        b.click(By.ID, "confirm")
        check("CSRF token is missing or wrong" in b.text(),
              "the browser's same-origin post without the CSRF token is refused")
        attacker, server = attacker_site(url, ueid, csrf)
        try:
            b.get(attacker)
            b.click(By.ID, "claim")
            check("refused" in b.text() and "not sent from this console" in b.text(),
                  "the browser's post from another origin is refused")
            b.shot("forged-refused")
        finally:
            server.shutdown()
        b.get(f"{url}/console/device?ueid={ueid}")
        check("revoked" not in b.text(), "the device is still active after the forgeries")
        ok, out = activate(command)
        check(ok, "and it still activates (real protocol)" + ("" if ok else f": {out}"))

        print("4. revoke the device")
        b.click(By.PARTIAL_LINK_TEXT, "Revoke this device")
        check("cannot be undone" in b.text(), "a confirmation page comes first")
        b.shot("revoke-confirm")
        b.click(By.ID, "confirm")
        check(b.driver.current_url.startswith(f"{url}/console/device?ueid="),
              "back on the device's page")
        state = b.driver.find_element(By.CSS_SELECTOR, "dd.revoked").text
        check(state.startswith("revoked"), f"the device is revoked ({state})")
        b.shot("device-revoked")
        ok, out = activate(command)
        check(not ok, "its next activation is refused (real protocol)")
        check("device_revoked" in out, "as device_revoked" + ("" if "device_revoked" in out
                                                              else f": {out}"))
        b.get(f"{url}/console/audit?device={ueid}")
        reasons = [r.find_elements(By.TAG_NAME, "td")[2].text
                   for r in b.driver.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
        # Newest first; within one second the order of the two is not defined.
        check(sorted(reasons[:2]) == ["device_revoked", "revoke_device"],
              f"the audit log shows the revocation and the refusal ({reasons[:3]})")
        b.shot("audit")

        print("5. logout")
        b.click(By.CSS_SELECTOR, "form.logout button")
        check(b.driver.current_url == f"{url}/console/login", "logged out")
        status, headers, _ = request("GET", f"{url}/console/models", session)
        check(status == 303 and headers.get("Location") == "/console/login",
              "the old session cookie opens nothing")
        b.shot("login")
    finally:
        b.quit()
    print("console test: all checks passed")


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"console test: {time.monotonic() - start:.1f} s in the browser")

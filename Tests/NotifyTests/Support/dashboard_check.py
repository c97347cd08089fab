#!/usr/bin/env python3
"""Drives the admin dashboard in a real browser (Debian's chromium and chromium-driver, headless) the way an
operator would, and reports what it saw.

Run with the tools venv (deploy/local/install-tools; Debian packages from deploy/local/install-deps):

    .local/venv/bin/python Tests/NotifyTests/Support/dashboard_check.py --base http://127.0.0.1:PORT \
        --email E --password P --expect-sent N --replay NOTIFICATION_ID --screenshot /path/file.png

Steps, each polled against a deadline (--timeout, at most 30 s; no fixed sleeps):
1. open /admin/ without a session: must end on /admin/login with the login form;
2. sign in through the form: must end on /admin/ with the HttpOnly cookie notify_admin set;
3. #total-sent shows N (live numbers), the #throughput-chart SVG has at least one [data-minute] element,
   and #updated-at changes between two polls while the document is never reloaded
   (performance navigation entries stay 1 and a marker set on window survives);
4. the #dead-letters row tr[data-notification-id=ID]: click its button.replay, wait until the row is gone;
5. self-service through the forms: create an API key (shown once) and revoke it; add a webhook endpoint (its secret
   shown once) and disable it; search users for --user-search, view one (devices listed), disable and enable it;
   preview the template --template, archive it (gone from the list, listed as archived) and restore it;
6. a 1400x1000 screenshot of the window to --screenshot.

On success prints one JSON object to stdout:
    {"logged_in": true, "sent": N, "chart_points": k, "updated_at": [first, second], "replayed": true,
     "self_service": {"key_prefix", "webhook_secret_prefix", "user_disabled", "template_restored", "preview"},
     "navigations": 1, "cookie": {"name", "http_only", "same_site", "secure"}, "screenshot": path}
On any failure exits 1, with the reason, the current URL, the page's visible text and the browser console
log on stderr. Uncaught JavaScript errors in the browser console are failures too.
"""
import argparse
import json
import os
import sys
import time
from urllib.parse import urlsplit

# Selenium Manager must never try to download a driver or a browser: both come from Debian.
os.environ["SE_OFFLINE"] = "true"
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
COOKIE = "notify_admin"
MAX_TIMEOUT = 30.0
POLL = 0.1


class Failure(Exception):
    pass


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the admin service's origin, e.g. http://127.0.0.1:8005")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--expect-sent", type=int, required=True, help="the value #total-sent must reach")
    parser.add_argument("--replay", required=True, help="a dead letter's notification_id to replay")
    parser.add_argument("--screenshot", required=True, help="where to write the PNG")
    parser.add_argument("--user-search", required=True, help="a user's name to search for (one match)")
    parser.add_argument("--template", required=True, help="an email template's code to preview, archive and restore")
    parser.add_argument("--webhook-url", required=True, help="a webhook URL the admin service accepts")
    parser.add_argument("--timeout", type=float, default=MAX_TIMEOUT, help="deadline of each wait, in seconds (at most 30)")
    args = parser.parse_args()
    args.timeout = max(1.0, min(args.timeout, MAX_TIMEOUT))
    args.base = args.base.rstrip("/")
    return args


def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # we run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_window_size(1400, 1000)
    driver.set_page_load_timeout(MAX_TIMEOUT)
    driver.set_script_timeout(MAX_TIMEOUT)
    return driver


class Check:
    def __init__(self, driver, args):
        self.driver = driver
        self.args = args
        self.console = []  # every browser log entry seen, in order (get_log drains the browser's buffer)

    def drain_console(self):
        try:
            self.console.extend(self.driver.get_log("browser"))
        except WebDriverException:
            pass
        return self.console

    def wait(self, description, condition):
        """Polls condition(driver) until it returns something truthy (returned) or the deadline passes.
        description: text, or a function giving it, for the failure message."""
        try:
            # The dashboard re-renders rows as it refreshes: an element read just as it is replaced is polled again.
            return WebDriverWait(
                self.driver, self.args.timeout, poll_frequency=POLL, ignored_exceptions=(StaleElementReferenceException,)
            ).until(
                lambda driver: condition(driver)
            )
        except TimeoutException:
            what = description() if callable(description) else description
            raise Failure(f"timed out after {self.args.timeout:g} s waiting for {what}") from None

    def path(self):
        return urlsplit(self.driver.current_url).path.rstrip("/") or "/"

    def js(self, script, *arguments):
        return self.driver.execute_script(script, *arguments)

    def text_of(self, element_id):
        return self.js("const n = document.getElementById(arguments[0]); return n ? n.textContent.trim() : null;", element_id)

    def navigations(self):
        return self.js("return performance.getEntriesByType('navigation').length;")

    def assert_not_reloaded(self, marker, when):
        navigations = self.navigations()
        still = self.js("return window.__dashboardCheckMarker === arguments[0];", marker)
        if navigations != 1 or not still:
            raise Failure(f"the dashboard reloaded {when} (navigation entries: {navigations}, marker kept: {still})")
        return navigations

    def run(self):
        args = self.args
        driver = self.driver

        # 1. Not signed in: /admin/ ends on the login page.
        driver.get(args.base + "/admin/")
        self.wait(
            "/admin/ to end on /admin/login with the login form",
            lambda d: self.path() == "/admin/login" and self.js("return !!document.getElementById('login-form');"),
        )
        if driver.get_cookie(COOKIE) is not None:
            raise Failure(f"cookie {COOKIE} present before signing in")

        # 2. Sign in through the form.
        email = driver.find_element(By.ID, "email")
        password = driver.find_element(By.ID, "password")
        email.clear()
        email.send_keys(args.email)
        password.clear()
        password.send_keys(args.password)
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

        def signed_in(d):
            if self.path() == "/admin" and self.js("return !!document.getElementById('total-sent');"):
                return True
            error = self.js("const n = document.getElementById('login-error'); return n && !n.hidden ? n.textContent.trim() : '';")
            if error:
                raise Failure(f"login refused: {error}")
            return False

        self.wait("the login to land on /admin/", signed_in)
        cookie = driver.get_cookie(COOKIE)
        if cookie is None:
            raise Failure(f"signed in but no cookie {COOKIE}")
        if not cookie.get("httpOnly"):
            raise Failure(f"cookie {COOKIE} is not HttpOnly: {cookie}")
        marker = f"check-{time.time_ns()}"
        self.js("window.__dashboardCheckMarker = arguments[0];", marker)
        self.assert_not_reloaded(marker, "right after signing in")

        # 3. Live numbers, the chart and the refresh without reload.
        expected = str(args.expect_sent)

        def sent_reached(d):
            text = self.text_of("total-sent")
            return text is not None and text.replace(",", "") == expected

        self.wait(lambda: f"#total-sent to show {expected} (it shows {self.text_of('total-sent')!r})", sent_reached)
        chart_points = self.wait(
            "#throughput-chart to have data elements",
            lambda d: self.js("return document.querySelectorAll('#throughput-chart [data-minute]').length;") or False,
        )
        axis_labels = self.js("return document.querySelectorAll('#throughput-chart text').length;")
        if axis_labels < 2:
            raise Failure(f"#throughput-chart has {axis_labels} text labels, expected axis labels")
        first = self.wait(
            "#updated-at to show a first poll",
            lambda d: (lambda t: t if t and t != "never" else False)(self.text_of("updated-at")),
        )
        second = self.wait(
            f"#updated-at to change from {first!r} on a later poll",
            lambda d: (lambda t: t if t and t not in ("never", first) else False)(self.text_of("updated-at")),
        )
        navigations = self.assert_not_reloaded(marker, "while polling")
        sent = int(self.text_of("total-sent").replace(",", ""))

        # 4. Replay the dead letter from its row.
        find_row = (
            "return Array.from(document.querySelectorAll('#dead-letters tr[data-notification-id]'))"
            ".find(r => r.getAttribute('data-notification-id') === arguments[0]) || null;"
        )
        # The dashboard re-renders its tables on every refresh: a row found just before one is gone ("stale") by the
        # time it is clicked. Find the row and click its button again until a click lands.
        def click_replay(d):
            try:
                row = self.js(find_row, args.replay)
                if not row:
                    return False
                buttons = row.find_elements(By.CSS_SELECTOR, "button.replay")
                if len(buttons) != 1:
                    raise Failure(f"the row of {args.replay} has {len(buttons)} button.replay")
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", buttons[0])
                buttons[0].click()
                return True
            except StaleElementReferenceException:
                return False

        self.wait(f"the #dead-letters row of {args.replay} and a click on its button.replay", click_replay)
        self.wait(f"the row of {args.replay} to leave #dead-letters", lambda d: self.js(find_row, args.replay) is None)
        self.assert_not_reloaded(marker, "after the replay")

        self_service = self.self_service()
        self.assert_not_reloaded(marker, "after the self-service steps")

        # 6. Screenshot of the window, from the top: a 1400x1000 window, grown by the browser's own frame so
        # that the page area (what the screenshot shows) is 1400x1000.
        self.js("window.scrollTo(0, 0);")
        driver.set_window_size(1400, 1000)
        inner_width, inner_height = self.js("return [window.innerWidth, window.innerHeight];")
        if (inner_width, inner_height) != (1400, 1000):
            driver.set_window_size(1400 + max(0, 1400 - inner_width), 1000 + max(0, 1000 - inner_height))
        directory = os.path.dirname(os.path.abspath(args.screenshot))
        os.makedirs(directory, exist_ok=True)
        if not driver.save_screenshot(args.screenshot):
            raise Failure(f"could not write the screenshot to {args.screenshot}")

        errors = [entry for entry in self.drain_console() if entry.get("source") == "javascript"]
        if errors:
            raise Failure(f"uncaught JavaScript errors in the console: {errors}")

        return {
            "logged_in": True,
            "sent": sent,
            "chart_points": chart_points,
            "updated_at": [first, second],
            "replayed": True,
            "self_service": self_service,
            "navigations": navigations,
            "cookie": {
                "name": cookie["name"],
                "http_only": bool(cookie.get("httpOnly")),
                "same_site": cookie.get("sameSite"),
                "secure": bool(cookie.get("secure")),
            },
            "screenshot": os.path.abspath(args.screenshot),
        }

    # ---- 5. self-service ----

    def fill(self, element_id, text):
        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text)

    def submit(self, form_id):
        button = self.driver.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        button.click()

    def row(self, table_id, attribute, value):
        return self.js(
            f"return Array.from(document.querySelectorAll('#{table_id} tbody tr[{attribute}]'))"
            f".find(r => r.getAttribute('{attribute}') === arguments[0]) || null;",
            value,
        )

    def row_text(self, table_id, text):
        return self.js(
            f"return Array.from(document.querySelectorAll('#{table_id} tbody tr'))"
            ".find(r => r.innerText.includes(arguments[0])) || null;",
            text,
        )

    def row_inner(self, table_id, text):
        """The visible text of the first row of the table that contains text, read in one script (never stale)."""
        return self.js(
            f"const r = Array.from(document.querySelectorAll('#{table_id} tbody tr')).find(r => r.innerText.includes(arguments[0]));"
            " return r ? r.innerText : null;",
            text,
        )

    def click_in(self, description, find_row, selector):
        """Clicks the button matching selector in the row find_row() returns, again until a click lands (the
        tables re-render after each action)."""

        def attempt(d):
            try:
                found = find_row()
                if not found:
                    return False
                buttons = found.find_elements(By.CSS_SELECTOR, selector)
                if not buttons:
                    return False
                d.execute_script("arguments[0].scrollIntoView({block: 'center'});", buttons[0])
                buttons[0].click()
                return True
            except StaleElementReferenceException:
                return False

        self.wait(description, attempt)

    def notice(self, element_id, kind):
        return self.js(f"const n = document.getElementById('{element_id}'); return n.dataset.kind === arguments[0] ? n.textContent : null;", kind)

    def self_service(self):
        args = self.args
        # An API key: created through the form, shown once, listed by its prefix, revoked with its button.
        self.fill("key-client", "dashboard-client")
        self.submit("key-form")
        key = self.wait("the new API key shown once in #key-secret", lambda d: self.js(
            "const n = document.getElementById('key-secret'); return !n.hidden && n.textContent.length > 20 ? n.textContent : null;"))
        if not key.startswith("nk_") or key.count("_") < 2:
            raise Failure(f"#key-secret does not hold an API key: {key[:6]}…")
        prefix = key.split("_")[1]
        key_row = lambda: self.row_text("keys", "dashboard-client")  # noqa: E731
        self.wait("the new key's row in #keys", lambda d: key_row())
        listed = self.wait("the key's row text", lambda d: self.row_inner("keys", "dashboard-client"))
        if prefix not in listed.split():
            raise Failure(f"the #keys row does not show a prefix of the key: {listed!r}")
        self.click_in("a click on the key's Revoke button", key_row, "button.revoke-key")
        self.wait("#key-status to say the key was revoked", lambda d: (self.notice("key-status", "ok") or "").startswith("Revoked"))
        self.wait("the revoked key to leave #keys", lambda d: key_row() is None)

        # A webhook endpoint: its secret shown once; disabled with its button.
        self.fill("webhook-client", "dashboard-client")
        self.fill("webhook-url", args.webhook_url)
        self.submit("webhook-form")
        secret = self.wait("the webhook secret shown once in #webhook-secret", lambda d: self.js(
            "const n = document.getElementById('webhook-secret'); return !n.hidden && n.textContent.startsWith('whsec_') ? n.textContent : null;"))
        hook_row = lambda: self.row_text("webhooks", args.webhook_url)  # noqa: E731
        self.wait("the endpoint's row in #webhooks", lambda d: hook_row())
        self.click_in("a click on the endpoint's Disable button", hook_row, "button.webhook-disable")
        self.wait("the endpoint shown disabled", lambda d: "disabled" in (self.row_inner("webhooks", args.webhook_url) or ""))

        # A user: searched, viewed with devices, disabled and enabled again.
        self.fill("user-search", args.user_search)
        self.submit("user-form")
        user_row = lambda: self.row_text("users", args.user_search)  # noqa: E731
        self.wait(f"a #users row for {args.user_search}", lambda d: user_row())
        self.click_in("a click on the user's View button", user_row, "button.user-view")
        detail = self.wait("#user-detail with the user's devices", lambda d: self.js(
            "const n = document.getElementById('user-detail'); return !n.hidden && n.textContent.includes('Devices') ? n.textContent : null;"))
        if args.user_search not in detail or "fcm" not in detail:
            raise Failure(f"#user-detail does not show the user and their FCM device: {detail!r}")
        self.click_in("a click on the user's Disable button", user_row, "button.user-disable")
        self.wait("the user shown disabled", lambda d: "disabled" in (self.row_inner("users", args.user_search) or ""))
        self.click_in("a click on the user's Enable button", user_row, "button.user-enable")
        self.wait("the user shown active again", lambda d: "active" in (self.row_inner("users", args.user_search) or ""))

        # A template: previewed, archived (listed as archived), restored.
        template_row = lambda: self.row("templates", "data-code", args.template)  # noqa: E731
        self.wait(f"the #templates row of {args.template}", lambda d: template_row())
        self.click_in("a click on the template's Preview button", template_row, "button.template-preview")
        self.wait("the preview form", lambda d: self.js("return !document.getElementById('preview-form').hidden;"))
        self.fill("preview-variables", '{"name": "Ada"}')
        self.submit("preview-form")
        preview = self.wait("the rendered preview in #template-detail", lambda d: self.js(
            "const n = document.getElementById('template-detail'); return !n.hidden && n.textContent.includes('subject:') ? n.textContent : null;"))
        self.click_in("a click on the template's Archive button", template_row, "button.template-archive")
        self.wait("the archived template to leave the list", lambda d: template_row() is None)
        self.js("document.getElementById('template-archived').checked = true;")
        self.submit("template-form")
        self.wait("the archived template listed as archived", lambda d: template_row())
        self.click_in("a click on the template's Restore button", template_row, "button.template-restore")
        self.wait("#template-status to say it was restored", lambda d: (self.notice("template-status", "ok") or "").startswith("Restored"))
        self.js("document.getElementById('template-archived').checked = false;")
        self.submit("template-form")
        self.wait("the restored template back in the list", lambda d: template_row())
        return {
            "key_prefix": prefix,
            "webhook_secret_prefix": secret[:12],
            "user_disabled_and_enabled": True,
            "template_restored": True,
            "preview": preview,
        }

    def report_failure(self, reason):
        print(f"dashboard_check: {reason}", file=sys.stderr)
        try:
            print(f"--- url: {self.driver.current_url}", file=sys.stderr)
            text = self.driver.execute_script("return document.body ? document.body.innerText : '';")
            print("--- visible text:", file=sys.stderr)
            print(text, file=sys.stderr)
        except WebDriverException as exc:
            print(f"--- visible text unavailable: {exc.msg}", file=sys.stderr)
        print("--- browser console:", file=sys.stderr)
        for entry in self.drain_console():
            print(f"{entry.get('level')} {entry.get('source', '')} {entry.get('message')}", file=sys.stderr)


def main():
    args = parse_args()
    try:
        driver = make_driver()
    except WebDriverException as exc:
        print(f"dashboard_check: cannot start {CHROMEDRIVER} with {CHROMIUM}: {exc.msg}", file=sys.stderr)
        return 1
    check = Check(driver, args)
    try:
        result = check.run()
    except Failure as exc:
        check.report_failure(str(exc))
        return 1
    except WebDriverException as exc:
        check.report_failure(f"webdriver error: {exc.msg}")
        return 1
    except Exception as exc:  # noqa: BLE001 - everything else is a failure of the check, with the page's state
        check.report_failure(f"unexpected error: {exc!r}")
        return 1
    finally:
        try:
            driver.quit()
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

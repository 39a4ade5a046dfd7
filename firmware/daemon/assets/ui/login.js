// The login page. Its one job beyond the plain form: someone who followed a link from another
// site arrives here even when logged in (the SameSite=Strict cookie is not sent on such a
// navigation). A same-origin request carries it, so ask, and go to the page if it is good.
"use strict";
fetch("/", { method: "HEAD", redirect: "manual", credentials: "same-origin" })
  .then((response) => {
    if (response.ok && !document.body.classList.contains("refused")) {
      window.location.replace("/");
    }
  })
  .catch(() => {});

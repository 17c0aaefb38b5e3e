/* app.js - the Usage page's logic (issue 8): placeholder until the page lands. */
"use strict";

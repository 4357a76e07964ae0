/* sigma-catalog: copy buttons and the rule search box. No dependencies; rule data only ever reaches
   the page through textContent and element attributes set one by one, never through innerHTML. */
(function () {
  "use strict";
  var script = document.currentScript;
  var scriptUrl = script && script.src ? script.src : location.href;
  var indexUrl = new URL("search-index.json", scriptUrl);
  var siteRoot = new URL("../../", scriptUrl);
  var indexPromise = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* -- copy buttons on rule bodies ------------------------------------------------------------ */
  function themeCopies() {
    /* Material's content.code.copy feature puts its own button on every code block */
    var config = document.getElementById("__config");
    if (!config) return false;
    try { return (JSON.parse(config.textContent).features || []).indexOf("content.code.copy") !== -1; }
    catch (e) { return false; }
  }

  function addCopyButtons() {
    if (themeCopies()) return;
    var blocks = document.querySelectorAll(".sc-code");
    Array.prototype.forEach.call(blocks, function (block) {
      var code = block.querySelector("pre code");
      if (!code || block.querySelector(".sc-copy")) return;
      var button = el("button", "sc-copy", "Copy");
      button.type = "button";
      button.title = "Copy the rule to the clipboard";
      button.addEventListener("click", function () {
        var text = code.textContent;
        var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
        } else { fallbackCopy(text); done(); }
      });
      block.insertBefore(button, block.firstChild);
    });
  }
  function fallbackCopy(text) {
    var area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  /* -- search ------------------------------------------------------------------------------------ */
  function loadIndex() {
    if (!indexPromise) {
      indexPromise = fetch(indexUrl.href).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (data) {
        var values = data.values.map(function (v) { return String(v).toLowerCase(); });
        var rules = data.rules.map(function (r) {
          return { slug: r[0], title: r[1], id: r[2], level: r[3], kind: r[4], techniques: r[5], values: r[6],
                   titleLower: String(r[1]).toLowerCase(), idLower: String(r[2]).toLowerCase(),
                   techLower: r[5].map(function (t) { return String(t).toLowerCase(); }) };
        });
        return { page: data.page, values: values, rawValues: data.values, rules: rules };
      });
    }
    return indexPromise;
  }

  function search(index, query) {
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) return [];
    var valueHits = terms.map(function (term) {
      var hits = new Map();
      for (var i = 0; i < index.values.length; i++) if (index.values[i].indexOf(term) !== -1) hits.set(i, true);
      return hits;
    });
    var results = [];
    index.rules.forEach(function (rule) {
      var score = 0, why = null;
      for (var t = 0; t < terms.length; t++) {
        var term = terms[t], matched = false;
        if (rule.idLower && rule.idLower === term) { score += 100; matched = true; why = why || "id"; }
        else if (rule.slug === term) { score += 90; matched = true; }
        else if (rule.idLower && term.length >= 4 && rule.idLower.indexOf(term) === 0) { score += 60; matched = true; why = why || "id"; }
        if (!matched) {
          for (var k = 0; k < rule.techLower.length; k++) {
            var tech = rule.techLower[k];
            if (tech === term || tech.indexOf(term + ".") === 0 || (term.length >= 3 && tech.indexOf(term) === 0)) {
              score += tech === term ? 50 : 30; matched = true; why = why || rule.techniques[k]; break;
            }
          }
        }
        if (!matched && rule.titleLower.indexOf(term) !== -1) { score += 20; matched = true; }
        if (!matched) {
          var hits = valueHits[t];
          for (var v = 0; v < rule.values.length; v++) {
            if (hits.has(rule.values[v])) { score += 10; matched = true; why = why || index.rawValues[rule.values[v]]; break; }
          }
        }
        if (!matched) return;
      }
      results.push({ rule: rule, score: score, why: why });
    });
    results.sort(function (a, b) { return b.score - a.score || a.rule.title.localeCompare(b.rule.title); });
    return results;
  }

  function ruleHref(index, slug) {
    return new URL(index.page.replace("{slug}", encodeURIComponent(slug)), siteRoot).href;
  }

  function setupBox(box) {
    var input = box.querySelector(".sc-search-input");
    var list = box.querySelector(".sc-search-results");
    var status = box.querySelector(".sc-search-status");
    if (!input || !list) return;
    var limit = box.classList.contains("sc-search-header") ? 12 : 100;
    var pending = null;
    function show(message) { if (status) status.textContent = message; }
    function run() {
      var query = input.value.trim();
      loadIndex().then(function (index) {
        list.textContent = "";
        if (!query) { show(""); return; }
        var results = search(index, query);
        show(results.length ? results.length + (results.length === 1 ? " rule" : " rules") : "No rule matches.");
        results.slice(0, limit).forEach(function (result) {
          var item = el("li", "sc-search-result");
          var link = el("a", null, result.rule.title);
          link.href = ruleHref(index, result.rule.slug);
          item.appendChild(link);
          var detail = [result.rule.level, result.why].filter(Boolean).join(" · ");
          if (detail) item.appendChild(el("span", "sc-search-why", detail));
          list.appendChild(item);
        });
        if (results.length > limit) list.appendChild(el("li", "sc-search-more", "… " + (results.length - limit) + " more"));
      }, function (error) { show("The search index could not be loaded (" + error.message + ")."); });
    }
    input.addEventListener("focus", function () { loadIndex().catch(function () {}); }, { once: true });
    input.addEventListener("input", function () { clearTimeout(pending); pending = setTimeout(run, 120); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        var first = list.querySelector("a");
        if (first) { event.preventDefault(); location.href = first.href; }
      } else if (event.key === "Escape") { input.value = ""; list.textContent = ""; show(""); }
    });
    var params = new URLSearchParams(location.search);
    if (box.classList.contains("sc-search-page") && params.get("q")) { input.value = params.get("q"); run(); }
  }

  function addHeaderBox() {
    var header = document.querySelector(".md-header__inner");
    if (!header || header.querySelector(".sc-search-header")) return;
    var box = el("div", "sc-search sc-search-header");
    box.setAttribute("role", "search");
    var input = el("input", "sc-search-input");
    input.type = "search";
    input.placeholder = "Find rules";
    input.setAttribute("aria-label", "Find rules by title, id, technique or indicator");
    input.autocomplete = "off";
    input.spellcheck = false;
    box.appendChild(input);
    box.appendChild(el("p", "sc-search-status"));
    box.appendChild(el("ol", "sc-search-results"));
    var anchor = header.querySelector(".md-header__source") || null;
    header.insertBefore(box, anchor);
    document.addEventListener("click", function (event) {
      if (!box.contains(event.target)) box.querySelector(".sc-search-results").textContent = "";
    });
  }

  /* -- rule page: the Copy action, folded stages opened by their anchors (issue 11) ----------- */
  function setupRulePage() {
    Array.prototype.forEach.call(document.querySelectorAll("button.sc-copy-file[data-src]"), function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        fetch(button.getAttribute("data-src"))
          .then(function (response) { return response.text(); })
          .then(function (text) { return navigator.clipboard.writeText(text); })
          .then(function () { button.textContent = "Copied"; }, function () { button.textContent = "Copy failed"; });
      });
    });
    function openTarget() {
      var id = decodeURIComponent(location.hash.slice(1));
      var target = id && document.getElementById(id);
      for (var node = target; node; node = node.parentElement) {
        if (node.tagName === "DETAILS") node.open = true;
      }
      if (target && target.tagName === "DETAILS") target.scrollIntoView();
    }
    window.addEventListener("hashchange", openTarget);
    openTarget();
  }

  function init() {
    setupRulePage();
    addCopyButtons();
    addHeaderBox();
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-search], .sc-search-header"), setupBox);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

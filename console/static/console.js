// txbox console: the only script. A "select all" box for the dead-letter table; every page works without it.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      all.form.querySelectorAll('input[name="id"]').forEach(function (box) { box.checked = all.checked; });
    });
  });
});

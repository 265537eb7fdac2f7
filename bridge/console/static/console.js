// The console works without this file; it only adds "select all" to the
// dead-letter list.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="id"]')) box.checked = all.checked;
  });
});

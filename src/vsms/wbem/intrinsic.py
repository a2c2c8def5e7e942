"""The traditional intrinsic operations of DSP0200 on top of the registry.

Each handler takes (:class:`Ctx`, :class:`Args`) and returns a :class:`Result` holding the
already-written content of IRETURNVALUE. Defaults follow DSP0200: GetClass/EnumerateClasses
LocalOnly=true and IncludeQualifiers=true; instance operations IncludeQualifiers=false and
IncludeClassOrigin=false; EnumerateInstances DeepInheritance=true; EnumerateClasses and
EnumerateClassNames DeepInheritance=false.
"""

from __future__ import annotations

import pywbem

from vsms.wbem import encode, query
from vsms.wbem.args import Args, Ctx, Result, invalid
from vsms.wbem.classxml import cim_class, qualifier_declaration
from vsms.wbem.shaping import InstanceShape, class_view

Instances = list[pywbem.CIMInstance]


# ---------------------------------------------------------------------- classes
def get_class(ctx: Ctx, a: Args) -> Result:
    name = a.classname("ClassName", required=True)
    assert name is not None
    try:
        cls = ctx.registry.get_class(ctx.namespace, name)
    except pywbem.CIMError as exc:
        if exc.status_code == pywbem.CIM_ERR_INVALID_CLASS:
            raise pywbem.CIMError(pywbem.CIM_ERR_NOT_FOUND, exc.status_description) from None
        raise
    view = class_view(cls, a.flag("LocalOnly", True), a.property_list())
    body = cim_class(view, a.flag("IncludeClassOrigin", False), a.flag("IncludeQualifiers", True))
    return Result(body, classname=cls.classname)


def _classes(ctx: Ctx, a: Args) -> list[pywbem.CIMClass]:
    name = a.classname("ClassName")
    return ctx.registry.enumerate_classes(ctx.namespace, name, a.flag("DeepInheritance", False))


def enumerate_classes(ctx: Ctx, a: Args) -> Result:
    local, origin = a.flag("LocalOnly", True), a.flag("IncludeClassOrigin", False)
    quals = a.flag("IncludeQualifiers", True)
    found = _classes(ctx, a)
    body = "".join(cim_class(class_view(c, local, None), origin, quals) for c in found)
    return Result(body, classname=a.classname("ClassName"), count=len(found))


def enumerate_class_names(ctx: Ctx, a: Args) -> Result:
    found = _classes(ctx, a)
    return Result("".join(encode.classname(c.classname) for c in found),
                  classname=a.classname("ClassName"), count=len(found))


# ---------------------------------------------------------------------- instances
def instance_shape(ctx: Ctx, a: Args, requested: str | None = None,
                   deep: bool = True) -> InstanceShape:
    """The shape a request asks for (flags it does not have count as their defaults)."""
    return InstanceShape(
        ctx.registry, ctx.namespace, property_list=a.property_list(),
        class_origin=a.flag("IncludeClassOrigin", False), local_only=a.flag("LocalOnly", False),
        deep=deep, requested=requested, qualifiers=a.flag("IncludeQualifiers", False))


def render(inst: pywbem.CIMInstance, shape: InstanceShape) -> str:
    keep, origins = shape.of(inst.classname)
    return encode.instance(inst, keep, origins, shape.qualifiers, shape.frames)


def get_instance(ctx: Ctx, a: Args) -> Result:
    path = a.instancename("InstanceName")
    inst = ctx.registry.get_instance(ctx.namespace, path)
    return Result(render(inst, instance_shape(ctx, a, inst.classname)), classname=path.classname)


def enumerate_instances(ctx: Ctx, a: Args) -> Result:
    name = a.classname("ClassName", required=True)
    assert name is not None
    found = ctx.registry.enumerate_instances(ctx.namespace, name)
    shape = instance_shape(ctx, a, name, a.flag("DeepInheritance", True))
    body = "".join(encode.named_instance(i, render(i, shape)) for i in found)
    return Result(body, classname=name, count=len(found))


def enumerate_instance_names(ctx: Ctx, a: Args) -> Result:
    name = a.classname("ClassName", required=True)
    assert name is not None
    found = ctx.registry.enumerate_instances(ctx.namespace, name)
    return Result("".join(encode.instancename(i.path) for i in found), classname=name,
                  count=len(found))


# ---------------------------------------------------------------------- associations
def filter_class(ctx: Ctx, a: Args, param: str) -> str | None:
    """An AssocClass/ResultClass parameter: None or the name of a class that exists."""
    name = a.classname(param)
    if name is None:
        return None
    try:
        return str(ctx.registry.get_class(ctx.namespace, name).classname)
    except pywbem.CIMError:
        raise invalid(f"parameter {param} of {a.op} names class {name}, which does not exist "
                      f"in {ctx.namespace}") from None


def source(ctx: Ctx, path: pywbem.CIMInstanceName, param: str, op: str) -> None:
    """The object of an association operation must exist (CIM_ERR_NOT_FOUND otherwise)."""
    try:
        ctx.registry.get_instance(ctx.namespace, path)
    except pywbem.CIMError as exc:
        if exc.status_code == pywbem.CIM_ERR_INVALID_CLASS:
            raise invalid(f"parameter {param} of {op}: {exc.status_description}") from None
        raise


def associated(ctx: Ctx, a: Args, target: pywbem.CIMInstanceName, refs: bool,
               param: str = "ObjectName") -> Instances:
    """Associator (refs=False) or association (refs=True) instances of ``target``."""
    result_class = filter_class(ctx, a, "ResultClass")
    role = a.string("Role")
    source(ctx, target, param, a.op)
    if refs:
        return ctx.registry.references(ctx.namespace, target, result_class, role)
    return ctx.registry.associators(ctx.namespace, target, filter_class(ctx, a, "AssocClass"),
                                    result_class, role, a.string("ResultRole"))


def _class_level(ctx: Ctx, a: Args, classname: str, refs: bool) -> list[pywbem.CIMClass]:
    """Class-level Associators/References: the classes association classes tie to ``classname``."""
    ns = ctx.registry.namespace(ctx.namespace)
    try:
        ns.cls(classname)
    except pywbem.CIMError:
        raise invalid(f"parameter ObjectName of {a.op} names class {classname}, which does not "
                      f"exist in {ctx.namespace}") from None
    assoc_class = None if refs else filter_class(ctx, a, "AssocClass")
    result_class = filter_class(ctx, a, "ResultClass")
    role, result_role = a.string("Role"), (None if refs else a.string("ResultRole"))
    out: dict[str, pywbem.CIMClass] = {}

    def related(x: str | None, y: str) -> bool:
        return bool(x) and (ns.is_subclass(y, str(x)) or ns.is_subclass(str(x), y))

    for ac in ns.classes.values():
        if "association" not in {q.lower() for q in ac.qualifiers}:
            continue
        if (assoc_class or (result_class if refs else None)) and not ns.is_subclass(
                ac.classname, str(assoc_class or result_class)):
            continue
        refs_props = [p for p in ac.properties.values() if p.type == "reference"]
        for p in refs_props:
            if (role and p.name.lower() != role.lower()) or not related(p.reference_class,
                                                                         classname):
                continue
            if refs:
                out[ac.classname.lower()] = ac
                break
            for other in refs_props:
                if other is p or (result_role and other.name.lower() != result_role.lower()):
                    continue
                rc = other.reference_class
                if rc and rc.lower() in ns.classes and (
                        result_class is None or ns.is_subclass(rc, result_class)):
                    out[rc.lower()] = ns.classes[rc.lower()]
    return list(out.values())


def _assoc_op(ctx: Ctx, a: Args, refs: bool, names: bool) -> Result:
    target = a.objectname("ObjectName")
    if isinstance(target, pywbem.CIMClassName):
        found = _class_level(ctx, a, target.classname, refs)
        host, ns = ctx.host, ctx.namespace
        if names:
            body = "".join(f"<OBJECTPATH>{encode.classpath(c.classname, host, ns)}</OBJECTPATH>"
                           for c in found)
        else:
            origin, quals = a.flag("IncludeClassOrigin", False), a.flag("IncludeQualifiers", False)
            plist = a.property_list()
            body = "".join(
                f"<VALUE.OBJECTWITHPATH>{encode.classpath(c.classname, host, ns)}"
                f"{cim_class(class_view(c, False, plist), origin, quals)}</VALUE.OBJECTWITHPATH>"
                for c in found)
        return Result(body, classname=target.classname, count=len(found))
    insts = associated(ctx, a, target, refs)
    if names:
        body = "".join(encode.object_path(i.path, ctx.host, ctx.namespace) for i in insts)
    else:
        shape = instance_shape(ctx, a)
        body = "".join(encode.object_with_path(i, render(i, shape), ctx.host, ctx.namespace)
                       for i in insts)
    return Result(body, classname=target.classname, count=len(insts))


def associators(ctx: Ctx, a: Args) -> Result:
    return _assoc_op(ctx, a, refs=False, names=False)


def associator_names(ctx: Ctx, a: Args) -> Result:
    return _assoc_op(ctx, a, refs=False, names=True)


def references(ctx: Ctx, a: Args) -> Result:
    return _assoc_op(ctx, a, refs=True, names=False)


def reference_names(ctx: Ctx, a: Args) -> Result:
    return _assoc_op(ctx, a, refs=True, names=True)


# ---------------------------------------------------------------------- qualifiers, query
def get_qualifier(ctx: Ctx, a: Args) -> Result:
    name = a.string("QualifierName", required=True)
    assert name is not None
    return Result(qualifier_declaration(ctx.registry.get_qualifier(ctx.namespace, name)))


def enumerate_qualifiers(ctx: Ctx, a: Args) -> Result:
    decls = ctx.registry.qualifier_declarations(ctx.namespace)
    return Result("".join(qualifier_declaration(q) for q in decls), count=len(decls))


def exec_query(ctx: Ctx, a: Args) -> Result:
    query.check_language(a.string("QueryLanguage", required=True))
    text = a.string("Query", required=True)
    assert text is not None
    rows = query.run(ctx.registry, ctx.namespace, text)
    frames: encode.Frames = {}
    body = "".join(encode.object_with_path(i, encode.instance(i, keep, False, False, frames),
                                           ctx.host, ctx.namespace) for i, keep in rows)
    return Result(body, count=len(rows))
